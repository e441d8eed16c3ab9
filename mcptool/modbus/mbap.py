"""MBAP framing (Modbus/TCP), sans-IO: a PDU in an ADU and back, every header field checked.

The framing layer knows the 7-byte header (transaction id, protocol id 0, length, unit)
and nothing about functions beyond what the caller's ``Expectation`` says (the function
code, and from its entry in ``functions`` the exact reply size and whether the reply
carries a byte count). A second framing sits beside this module with the same three
jobs: ``frame`` a request, judge the bytes of a reply (``check_reply``), and cut a
server's byte stream into requests (``split_requests``). For RTU (serial, or RTU over
TCP) the unit is the first byte, a CRC-16 the last two, and there is no length field and
no transaction id: the frame length comes from the same ``Function.response_size`` and
``byte_counted`` that are checked here, so the function entries need no change.

Replies are checked field by field, in wire order, because pymodbus's client drops
frames with a non-zero protocol id and folds every other framing error into "no
response": a probe must say *which* field was wrong.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

HEADER: Final = struct.Struct(">HHHB")
MAX_LENGTH: Final = 254  # unit id + a PDU of at most 253 bytes


def frame(transaction_id: int, unit: int, pdu: bytes) -> bytes:
    """An MBAP header (protocol id 0) in front of ``pdu``."""
    return HEADER.pack(transaction_id, 0, len(pdu) + 1, unit) + pdu


class MalformedField(enum.StrEnum):
    """The reply field that shows a reply is not (valid) Modbus/TCP."""

    PROTOCOL_ID = "protocol_id"
    LENGTH = "length"
    TRANSACTION_ID = "transaction_id"
    UNIT = "unit"
    FUNCTION = "function"
    BYTE_COUNT = "byte_count"


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a well-formed reply to one request looks like."""

    transaction_id: int
    unit: int
    function: int
    #: Exact size of the normal response PDU (from the function's entry), or None.
    response_size: int | None = None
    #: The normal response's second byte is a byte count (reads): checked on its own.
    byte_counted: bool = False


@dataclass(frozen=True, slots=True)
class Malformed:
    field: MalformedField
    reason: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A well-formed reply frame: its PDU (normal or exception) and the bytes it used."""

    pdu: bytes
    size: int

    @property
    def exception_code(self) -> int | None:
        return self.pdu[1] if self.pdu[0] & 0x80 else None


@dataclass(frozen=True, slots=True)
class Stale:
    """A late reply to an earlier request that timed out: skip ``size`` bytes."""

    size: int


NEED_MORE: Final = None
Verdict = Answer | Malformed | Stale | None


def check_reply(
    buffer: bytes | bytearray, expect: Expectation, stale: frozenset[int] | set[int] = frozenset()
) -> Verdict:
    """Judge the bytes received so far: an answer, a malformed field, a stale frame or None.

    Fields are checked in wire order and as soon as they arrive, so a non-Modbus peer is
    named from its first bytes without waiting for a length it never meant.
    """
    have = len(buffer)
    if have < 4:
        return NEED_MORE
    tid, protocol_id = buffer[0] << 8 | buffer[1], buffer[2] << 8 | buffer[3]
    if protocol_id != 0:
        return Malformed(
            MalformedField.PROTOCOL_ID,
            f"protocol id {protocol_id:#06x}, not 0: the peer does not speak Modbus/TCP "
            f"(first bytes {bytes(buffer[:8]).hex(' ')})",
        )
    if have < 6:
        return NEED_MORE
    length = buffer[4] << 8 | buffer[5]
    if not 2 <= length <= MAX_LENGTH:
        return Malformed(MalformedField.LENGTH, f"length field {length} is outside 2-254")
    if tid != expect.transaction_id:
        if tid in stale:
            return Stale(6 + length) if have >= 6 + length else NEED_MORE
        return Malformed(
            MalformedField.TRANSACTION_ID,
            f"transaction id {tid} answers no request (sent {expect.transaction_id})",
        )
    if have < 8:
        return NEED_MORE
    if buffer[6] != expect.unit:
        return Malformed(MalformedField.UNIT, f"unit {buffer[6]} in reply, {expect.unit} asked")
    function = buffer[7]
    size = expect.response_size
    if function == expect.function | 0x80:
        if length != 3:
            return Malformed(
                MalformedField.LENGTH, f"length field {length} in an exception reply (must be 3)"
            )
    elif function != expect.function:
        return Malformed(
            MalformedField.FUNCTION,
            f"function {function:#04x} in reply to function {expect.function:#04x}",
        )
    elif size is not None:
        if expect.byte_counted:
            if have < 9:
                return NEED_MORE
            verdict = _check_counted_sizes(length, buffer[8], size - 2)
            if verdict is not None:
                return verdict
        elif length != size + 1:
            return Malformed(
                MalformedField.LENGTH, f"length field {length}, expected {size + 1} for the reply"
            )
    if have < 6 + length:
        return NEED_MORE
    return Answer(bytes(buffer[7 : 6 + length]), 6 + length)


def _check_counted_sizes(length: int, byte_count: int, wanted: int) -> Malformed | None:
    # The request is the reference: whichever of the two size fields disagrees with it
    # is the broken one; if both do, a self-consistent frame means the device sent a
    # different amount of data, an inconsistent one means the framing is broken.
    length_ok = length == wanted + 3
    count_ok = byte_count == wanted
    if length_ok and count_ok:
        return None
    if count_ok or (not length_ok and length != byte_count + 3):
        return Malformed(
            MalformedField.LENGTH,
            f"length field {length}, expected {wanted + 3} for {wanted} data bytes",
        )
    return Malformed(
        MalformedField.BYTE_COUNT, f"byte count {byte_count}, expected {wanted} for the request"
    )


def split_requests(buffer: bytes | bytearray) -> tuple[list[tuple[int, int, bytes]], int, bool]:
    """A server's view: the complete request frames at the start of ``buffer``.

    Returns ``(frames, used, broken)``: each frame as ``(transaction id, unit, pdu)``, the
    number of bytes they took, and whether the stream stops being Modbus/TCP after them
    (a protocol id other than 0, a length outside 2-254). Devices drop such a connection
    rather than guess where the next frame starts.
    """
    frames: list[tuple[int, int, bytes]] = []
    pos, size = 0, len(buffer)
    unpack = HEADER.unpack_from
    while size - pos >= 8:
        tid, pid, length, unit = unpack(buffer, pos)
        if pid != 0 or length < 2 or length > MAX_LENGTH:
            return frames, pos, True
        end = pos + 6 + length
        if end > size:
            break
        frames.append((tid, unit, bytes(buffer[pos + 7 : end])))
        pos = end
    return frames, pos, False
