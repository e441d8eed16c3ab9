"""RTU framing (serial lines, and RTU over TCP), sans-IO: bytes and their arrival time in,
frames out.

An RTU frame is the unit id, the PDU and a CRC-16/Modbus (low byte first), with no length
field and no transaction id. Where a frame ends is known from its first bytes, as the
function entries tell it (``Function.request_size`` for a server reading requests; the
reply size of the request for a client: ``response_size``, ``byte_counted``, 5 bytes for
an exception), so a decoder hands a frame over the moment its last byte arrives instead
of waiting for the line to fall silent. Only a function whose length the entry cannot
tell (0x08 diagnostics, a code not registered) ends at the silence after it on a line, and
at the first CRC that matches over TCP.

The 3.5-character silence of the specification delimits frames on a serial line: bytes
before a silence cannot belong to the frame after it. A decoder is told the silence it
may rely on (``gap``): when that much time passes with an incomplete frame in hand, the
bytes were noise or a cut-off frame and are dropped, so the next frame is read from its
own first byte. Noise between frames (a byte that cannot start a frame, a candidate whose
CRC fails) is skipped one byte at a time until a frame with a good CRC starts. Over TCP
there is no silence to rely on (``gap=None``): there, a candidate that waits for bytes is
given up as soon as a complete frame with a good CRC starts after it.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from mcptool.modbus.functions import FUNCTIONS, MEI_DEVICE_IDENTIFICATION
from mcptool.modbus.mbap import Answer, Expectation, Malformed, MalformedField

__all__ = [
    "MAX_FRAME",
    "ReplyDecoder",
    "RequestDecoder",
    "char_time",
    "crc16",
    "frame",
    "inter_frame_delay",
    "reply_length",
    "request_length",
]

MAX_FRAME: Final = 256  # unit + a PDU of at most 253 bytes + CRC
MAX_UNIT: Final = 247  # 248-255 are reserved on a serial line


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final = _table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/Modbus (poly 0xA001 reflected, init 0xFFFF); a frame with its CRC gives 0."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def frame(unit: int, pdu: bytes) -> bytes:
    """The RTU frame of ``pdu`` for ``unit``: unit, PDU, CRC low byte first."""
    adu = bytes((unit,)) + pdu
    return adu + crc16(adu).to_bytes(2, "little")


def char_time(baudrate: int, bits_per_char: int = 11) -> float:
    """Seconds one character takes on the line (start, 8 data, parity or 2nd stop, stop)."""
    return bits_per_char / baudrate


def inter_frame_delay(baudrate: int, bits_per_char: int = 11) -> float:
    """The 3.5-character silence between frames; a fixed 1.75 ms above 19200 baud
    (Modbus over serial line v1.02, 2.5.1.1)."""
    if baudrate > 19200:
        return 0.00175
    return 3.5 * char_time(baudrate, bits_per_char)


#: What a length function says about a position: not a frame start, or unknown length.
NOT_A_START: Final = 0
UNKNOWN: Final = -1


def request_length(buffer: bytes | bytearray, pos: int) -> int:
    """Total size of the request frame at ``pos`` (a lower bound while its head is short),
    ``NOT_A_START`` or ``UNKNOWN`` (ends at the first good CRC)."""
    have = len(buffer) - pos
    if buffer[pos] > MAX_UNIT:
        return NOT_A_START
    if have < 2:
        return 2
    code = buffer[pos + 1]
    if code & 0x80 or code == 0:
        return NOT_A_START
    entry = FUNCTIONS.get(code)
    if entry is None:
        return UNKNOWN
    size = entry.request_size(bytes(buffer[pos + 1 : pos + 17]))
    return UNKNOWN if size is None else size + 3


def reply_length(buffer: bytes | bytearray, pos: int, expect: Expectation) -> int:
    """Total size of the reply frame to ``expect`` at ``pos`` (a lower bound while its head
    is short), ``NOT_A_START`` (another unit or function: noise, or another device's frame)
    or ``UNKNOWN``."""
    have = len(buffer) - pos
    if buffer[pos] != expect.unit:
        return NOT_A_START
    if have < 2:
        return 2
    code = buffer[pos + 1]
    if code == expect.function | 0x80:
        return 5
    if code != expect.function:
        return NOT_A_START
    if expect.byte_counted:
        return 5 + buffer[pos + 2] if have >= 3 else 3
    if expect.response_size is not None:
        return expect.response_size + 3
    if code == 0x2B:
        return _identification_length(buffer, pos)
    return UNKNOWN


def _identification_length(buffer: bytes | bytearray, pos: int) -> int:
    # unit, 0x2B, MEI, read code, conformity, more, next id, count, then (id, len, value)...
    head = pos + 8
    if len(buffer) < head:
        return head - pos
    if buffer[pos + 2] != MEI_DEVICE_IDENTIFICATION:
        return NOT_A_START
    at = head
    for _ in range(buffer[pos + 7]):
        if len(buffer) < at + 2:
            return at + 2 - pos
        at += 2 + buffer[at + 1]
    return at + 2 - pos


class _Decoder:
    """Cuts frames from a byte stream by their length, CRC and the silences between them."""

    def __init__(self, gap: float | None) -> None:
        self._buffer = bytearray()
        self._gap = gap
        self._last: float | None = None
        self.frames: deque[bytes] = deque()  # complete frames, CRC checked and removed
        self.noise = 0  # bytes skipped because no frame started there
        self.bad_crc = 0  # candidates of the right length whose CRC failed

    def _length(self, buffer: bytearray, pos: int) -> int:
        raise NotImplementedError

    @property
    def pending(self) -> bytes:
        """Bytes received that are not (yet) a frame."""
        return bytes(self._buffer)

    def clear(self) -> None:
        self._buffer.clear()
        self.frames.clear()
        self._last = None

    def deadline(self) -> float | None:
        """When the silence after the pending bytes ends them (call ``silence`` then)."""
        if self._gap is None or self._last is None or not self._buffer:
            return None
        return self._last + self._gap

    def feed(self, data: bytes, now: float) -> None:
        """Bytes as they arrived, at ``now`` (seconds, any monotonic clock)."""
        self.silence(now)
        self._last = now
        self._buffer += data
        self._hunt(sealed=False)

    def silence(self, now: float) -> None:
        """No byte arrived up to ``now``: after a full gap, pending bytes end where they are."""
        deadline = self.deadline()
        if deadline is not None and now >= deadline:
            self._hunt(sealed=True)
            self.noise += len(self._buffer)
            self._buffer.clear()

    def _hunt(self, sealed: bool) -> None:
        buffer = self._buffer
        pos, end = 0, len(buffer)
        while pos < end:
            size = self._length(buffer, pos)
            if size == NOT_A_START:
                pos += 1
                self.noise += 1
                continue
            if size == UNKNOWN:
                # On a line, the silence ends the frame (a CRC can match by chance inside
                # the data, one time in 65536); over TCP the first good CRC has to do.
                if self._gap is not None and not sealed:
                    break
                stop = self._good_crc(pos, longest=sealed)
                if stop is None:
                    if sealed or end - pos >= MAX_FRAME:
                        pos += 1
                        self.noise += 1
                        continue
                    break
                self._emit(pos, stop)
                pos = stop
                continue
            if size > end - pos:
                if sealed or size > MAX_FRAME or self._complete_after(pos + 1):
                    pos += 1
                    self.noise += 1
                    continue
                break
            if crc16(memoryview(buffer)[pos : pos + size]) == 0:
                self._emit(pos, pos + size)
                pos += size
            else:
                self.bad_crc += 1
                pos += 1
        del buffer[:pos]

    def _emit(self, start: int, stop: int) -> None:
        self.frames.append(bytes(self._buffer[start : stop - 2]))

    def _good_crc(self, pos: int, *, longest: bool) -> int | None:
        view = memoryview(self._buffer)
        stops = range(pos + 4, min(len(self._buffer), pos + MAX_FRAME) + 1)
        for stop in reversed(stops) if longest else stops:
            if crc16(view[pos:stop]) == 0:
                return stop
        return None

    def _complete_after(self, start: int) -> bool:
        # Is a whole frame with a good CRC already in hand after an incomplete candidate?
        # Then the candidate was noise that happened to look like a frame's head.
        buffer, view = self._buffer, memoryview(self._buffer)
        for pos in range(start, len(buffer) - 3):
            size = self._length(buffer, pos)
            if 4 <= size <= len(buffer) - pos and crc16(view[pos : pos + size]) == 0:
                return True
        return False


class RequestDecoder(_Decoder):
    """A server's (device's) view: requests as ``(unit, pdu)``."""

    def _length(self, buffer: bytearray, pos: int) -> int:
        return request_length(buffer, pos)

    def requests(self) -> list[tuple[int, bytes]]:
        """The complete requests so far, oldest first (and forgets them)."""
        found = [(adu[0], adu[1:]) for adu in self.frames]
        self.frames.clear()
        return found


class ReplyDecoder(_Decoder):
    """A client's view: the reply to one request at a time (``expect``), checked."""

    def __init__(self, gap: float | None) -> None:
        _Decoder.__init__(self, gap)
        self._expect: Expectation | None = None

    def expect(self, expectation: Expectation) -> None:
        """A new request went out: what came before it can only be stale."""
        self.clear()
        self.noise = self.bad_crc = 0
        self._expect = expectation

    def _length(self, buffer: bytearray, pos: int) -> int:
        if self._expect is None:
            return NOT_A_START
        return reply_length(buffer, pos, self._expect)

    def reply(self) -> Answer | Malformed | None:
        """The reply, once its last byte is in; a reply of the wrong size is ``Malformed``."""
        if not self.frames or self._expect is None:
            return None
        adu = self.frames.popleft()
        pdu = adu[1:]
        expect = self._expect
        if not pdu[0] & 0x80 and expect.byte_counted and expect.response_size is not None:
            wanted = expect.response_size - 2
            if pdu[1] != wanted:
                return Malformed(
                    MalformedField.BYTE_COUNT,
                    f"byte count {pdu[1]}, expected {wanted} for the request",
                )
        return Answer(pdu, len(adu) + 2)

    def why_not(self) -> str:
        """What was heard instead of a reply, for a timeout's message ("" if nothing)."""
        parts = []
        if self.bad_crc:
            parts.append(f"{self.bad_crc} frame(s) with a bad CRC")
        if self.noise or self._buffer:
            shown = bytes(self._buffer[:12]).hex(" ")
            parts.append(
                f"{self.noise + len(self._buffer)} byte(s) that were no reply"
                + (f" (pending {shown})" if shown else "")
            )
        return "; ".join(parts)
