"""The framings a client can talk through, as one small interface the drivers call.

A driver (``connection.ModbusConnection`` on a TCP socket, ``serial_line.SerialBus`` on a
serial port) moves bytes and reads the clock; the framing turns a request PDU into the
bytes to send and the bytes received into the reply: ``MbapFraming`` (Modbus/TCP, with
transaction ids, stale replies skipped) and ``RtuFraming`` (serial RTU, and RTU over TCP
as serial-to-Ethernet converters pass it). Sans-IO like the framing modules it wraps.

When an MBAP reply turns out not to be Modbus/TCP, ``foreign`` says what it is instead
(RTU, Modbus ASCII, TLS) and which option talks to it, because "bad protocol id" alone
leaves a user with a converter in RTU mode nowhere to go.
"""

from __future__ import annotations

import enum
from typing import Final, Protocol

from mcptool.modbus import rtu
from mcptool.modbus.functions import Function
from mcptool.modbus.mbap import (
    Answer,
    Expectation,
    Malformed,
    MalformedField,
    Stale,
    check_reply,
    frame,
)

__all__ = ["Framing", "FramingName", "MbapFraming", "RtuFraming", "foreign", "make_framing"]


class FramingName(enum.StrEnum):
    """How PDUs are framed on a link (the ``--framing`` values and the URL schemes)."""

    TCP = "tcp"  # Modbus/TCP: MBAP header
    RTU = "rtu"  # RTU frames (unit, PDU, CRC), over TCP or on a serial line


class Framing(Protocol):
    """What a driver needs of a framing: bytes to send, and the reply from bytes received."""

    def request(self, unit: int, pdu: bytes, entry: Function) -> bytes:
        """The frame to send; from now on, replies are judged against this request."""
        ...

    def feed(self, data: bytes, now: float) -> Answer | Malformed | None:
        """Bytes received at ``now``: the reply once complete, or a malformed field."""
        ...

    def silence(self, now: float) -> Answer | Malformed | None:
        """Nothing arrived until ``now`` (see ``deadline``)."""
        ...

    def deadline(self) -> float | None:
        """When ``silence`` should be called, if the framing relies on silences."""
        ...

    def timed_out(self) -> tuple[bytes, str]:
        """The reply did not come: the bytes that were half a reply, and what was heard."""
        ...


class MbapFraming:
    """Modbus/TCP: transaction ids, so a late reply to a timed-out request is skipped."""

    __slots__ = ("_buffer", "_expect", "_next_tid", "_stale")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._stale: set[int] = set()
        self._expect: Expectation | None = None
        self._next_tid = 1

    def request(self, unit: int, pdu: bytes, entry: Function) -> bytes:
        tid = self._next_tid
        self._next_tid = tid % 0xFFFF + 1
        self._expect = Expectation(tid, unit, pdu[0], entry.response_size(pdu), entry.byte_counted)
        return frame(tid, unit, pdu)

    def feed(self, data: bytes, now: float) -> Answer | Malformed | None:
        self._buffer += data
        return self._judge()

    def silence(self, now: float) -> Answer | Malformed | None:
        return None

    def deadline(self) -> float | None:
        return None

    def timed_out(self) -> tuple[bytes, str]:
        if self._expect is not None:
            self._stale.add(self._expect.transaction_id)
        return bytes(self._buffer), ""

    def _judge(self) -> Answer | Malformed | None:
        buffer, expect = self._buffer, self._expect
        if expect is None:
            return None
        while True:
            verdict = check_reply(buffer, expect, self._stale)
            if verdict is None:
                return None
            if isinstance(verdict, Stale):
                del buffer[: verdict.size]
                continue
            if isinstance(verdict, Malformed):
                if verdict.field is MalformedField.PROTOCOL_ID:
                    what = foreign(buffer, expect)
                    if what is NEED_MORE:
                        return None
                    if what:
                        return Malformed(verdict.field, f"{verdict.reason}; {what}")
                return verdict
            del buffer[: verdict.size]
            return verdict


class RtuFraming:
    """RTU frames: no transaction id, so whatever came before a request is stale."""

    __slots__ = ("_decoder",)

    def __init__(self, gap: float | None = None) -> None:
        self._decoder = rtu.ReplyDecoder(gap)

    def request(self, unit: int, pdu: bytes, entry: Function) -> bytes:
        self._decoder.expect(
            Expectation(0, unit, pdu[0], entry.response_size(pdu), entry.byte_counted)
        )
        return rtu.frame(unit, pdu)

    def feed(self, data: bytes, now: float) -> Answer | Malformed | None:
        self._decoder.feed(data, now)
        return self._decoder.reply()

    def silence(self, now: float) -> Answer | Malformed | None:
        self._decoder.silence(now)
        return self._decoder.reply()

    def deadline(self) -> float | None:
        return self._decoder.deadline()

    def timed_out(self) -> tuple[bytes, str]:
        # Half a frame on an RTU link is noise or a device cut off: the link stays usable
        # (the next request starts afresh), so nothing is handed back as a partial reply.
        return b"", self._decoder.why_not()


def make_framing(name: FramingName | str, gap: float | None = None) -> Framing:
    """The framing called ``name`` (``gap``: the silence RTU may rely on, None over TCP)."""
    if FramingName(name) is FramingName.RTU:
        return RtuFraming(gap)
    return MbapFraming()


NEED_MORE: Final = None
_TLS_RECORDS: Final = frozenset({0x15, 0x16})  # alert, handshake


def foreign(buffer: bytes | bytearray, expect: Expectation) -> str | None:
    """What a reply that is not Modbus/TCP is, with the option that talks to it: a
    sentence, "" when it is none of the known framings, or ``NEED_MORE`` while it may
    still become a whole RTU or ASCII frame."""
    head = bytes(buffer[:8]).hex(" ")
    if len(buffer) >= 3 and buffer[0] in _TLS_RECORDS and buffer[1] == 0x03 and buffer[2] <= 4:
        return (
            f"it is a TLS record ({head}): the port expects Modbus/TCP Security (TLS), "
            "which mcptool does not speak; use the device's plain Modbus/TCP port (502)"
        )
    if buffer[:1] == b":":
        end = bytes(buffer).find(b"\r\n")
        if end < 0:
            return NEED_MORE if len(buffer) < 513 else ""
        text = bytes(buffer[1:end])
        try:
            data = bytes.fromhex(text.decode("ascii"))
        except ValueError:
            return ""
        if len(data) >= 3 and sum(data) & 0xFF == 0:
            return (
                f"it is a Modbus ASCII frame (unit {data[0]}, function {data[1]:#04x}, "
                "LRC ok), which mcptool does not speak: set the device or converter to "
                "RTU and use --framing rtu"
            )
        return ""
    size = rtu.reply_length(buffer, 0, expect)
    if size in (rtu.NOT_A_START, rtu.UNKNOWN):
        return ""
    if size > len(buffer):
        return NEED_MORE if size <= rtu.MAX_FRAME else ""
    if rtu.crc16(buffer[:size]) != 0:
        return ""
    return (
        f"it is an RTU frame (unit {buffer[0]}, function {buffer[1]:#04x}, CRC ok): the "
        "peer passes RTU over TCP, as serial converters do; use --framing rtu "
        "(or a rtu-tcp://HOST:PORT target)"
    )
