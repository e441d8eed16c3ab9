"""A sans-IO incremental decoder: bytes in, in pieces of any size; whole frames out.

No socket, no clock, no asyncio: a driver feeds it what it reads. It keeps at most one
incomplete frame (header plus at most ``max_length`` payload bytes), whatever it is fed.
"""

from __future__ import annotations

from typing import Literal

from mcptool.frame.codec import TYPE_TABLE, Frame, check_header
from mcptool.frame.errors import FrameError, TruncatedFrame
from mcptool.frame.spec import HEADER_STRUCT
from mcptool.frame.types import HEADER_SIZE, MAGIC, MAX_LENGTH_DEFAULT, MAX_LENGTH_LIMIT

OnGarbage = Literal["raise", "resync"]
_MAGIC_BYTE = bytes([MAGIC])
_new_frame = tuple.__new__  # Frame(...) through NamedTuple.__new__ costs twice as much


class FrameDecoder:
    """Turn a byte stream into frames.

    ``on_garbage="raise"`` (the default) raises the first ``FrameError`` and stays failed:
    a stream out of step cannot be trusted again. The frames decoded from the same
    ``feed`` before the error are on the error as ``error.frames``, so none is lost.
    ``on_garbage="resync"`` skips to the next magic byte instead and counts what it
    skipped in ``skipped_bytes`` and ``resyncs``.
    """

    def __init__(
        self, max_length: int = MAX_LENGTH_DEFAULT, on_garbage: OnGarbage = "raise"
    ) -> None:
        if not 0 <= max_length <= MAX_LENGTH_LIMIT:
            raise ValueError(f"max_length must be 0..{MAX_LENGTH_LIMIT}, not {max_length}")
        if on_garbage not in ("raise", "resync"):
            raise ValueError(f"on_garbage must be 'raise' or 'resync', not {on_garbage!r}")
        self.max_length = max_length
        self.on_garbage: OnGarbage = on_garbage
        self.skipped_bytes = 0
        self.resyncs = 0
        self._buffer = b""
        self._consumed = 0  # stream offset of self._buffer[0]
        self._error: FrameError | None = None
        self._skip_end = -1  # stream offset where the last skipped run ended

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)

    @property
    def offset(self) -> int:
        """Stream offset of the next byte the decoder has not yet turned into a frame."""
        return self._consumed

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Add bytes from the stream; return every frame they complete, in order."""
        if self._error is not None:
            raise self._error
        buf = self._buffer + data if self._buffer else bytes(data)
        frames: list[Frame] = []
        append = frames.append
        unpack = HEADER_STRUCT.unpack_from
        types = TYPE_TABLE
        max_length = self.max_length
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_SIZE:
            magic, version, length, type_code = unpack(buf, pos)
            message_type = types[type_code]
            if magic != MAGIC or version != 1 or message_type is None or length > max_length:
                try:
                    check_header(
                        magic, version, length, type_code, self._consumed + pos, max_length
                    )
                except FrameError as error:
                    pos = self._garbage(error, buf, pos, frames)
                    continue
            stop = pos + HEADER_SIZE + length
            if stop > end:
                break
            append(_new_frame(Frame, (message_type, buf[pos + HEADER_SIZE : stop], version)))
            pos = stop
        if end - pos and buf[pos] != MAGIC and self.on_garbage == "resync":
            # Fewer than five bytes left that cannot start a frame: skip them now.
            pos = self._garbage(None, buf, pos, frames)
        self._consumed += pos
        self._buffer = buf[pos:]
        return frames

    def close(self) -> None:
        """The stream ended: raise if it stopped in the middle of a frame."""
        if self._error is not None:
            raise self._error
        if self._buffer:
            held = len(self._buffer)
            if self._buffer[0] != MAGIC:
                reason = f"{held} trailing byte(s) that do not start a frame"
            elif held < HEADER_SIZE:
                reason = f"stream ended {held} byte(s) into a {HEADER_SIZE}-byte header"
            else:
                length = HEADER_STRUCT.unpack_from(self._buffer)[2]
                reason = f"stream ended {held - HEADER_SIZE} of {length} payload bytes into a frame"
            error = TruncatedFrame(reason, self._consumed)
            self._error = error
            raise error

    def _garbage(self, error: FrameError | None, buf: bytes, pos: int, frames: list[Frame]) -> int:
        if self.on_garbage == "raise":
            assert error is not None
            error.frames = frames  # type: ignore[attr-defined]
            self._error = error
            self._consumed += pos
            self._buffer = b""
            raise error
        found = buf.find(_MAGIC_BYTE, pos + 1)
        new_pos = len(buf) if found < 0 else found
        self.skipped_bytes += new_pos - pos
        if self._consumed + pos != self._skip_end:  # a new run, not more of the last one
            self.resyncs += 1
        self._skip_end = self._consumed + new_pos
        return new_pos
