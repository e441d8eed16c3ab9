"""Read-only Modbus/TCP requests and strict checking of the replies (sans-IO).

Requests are encoded by pymodbus's PDU classes once per request shape; only the 7-byte
MBAP header is packed per probe, so pymodbus costs nothing on the hot path. Replies are
checked here field by field, in wire order, because pymodbus's client drops frames with
a non-zero protocol id and folds every other framing error into "no response": a probe
must say *which* field was wrong. Once a frame is known to be well formed, pymodbus's
decoder turns the PDU into values, an exception code or identification objects.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Final

from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadDiscreteInputsRequest
from pymodbus.pdu.mei_message import ReadDeviceInformationRequest
from pymodbus.pdu.other_message import ReportDeviceIdRequest
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
)

from mcptool.errors import UsageError

READ_FUNCTIONS: Final[dict[int, str]] = {
    1: "read coils",
    2: "read discrete inputs",
    3: "read holding registers",
    4: "read input registers",
}
#: Function codes that change a device or its communication state; refused by name.
WRITE_OR_DIAGNOSTIC_FUNCTIONS: Final[dict[int, str]] = {
    5: "write single coil",
    6: "write single register",
    8: "diagnostics",
    15: "write multiple coils",
    16: "write multiple registers",
    22: "mask write register",
    23: "read/write multiple registers",
}
READ_DEVICE_IDENTIFICATION: Final = 0x2B
REPORT_SERVER_ID: Final = 0x11

_MAX_COUNT: Final[dict[int, int]] = {1: 2000, 2: 2000, 3: 125, 4: 125}
_REQUEST_CLASSES: Final[dict[int, type[ModbusPDU]]] = {
    1: ReadCoilsRequest,
    2: ReadDiscreteInputsRequest,
    3: ReadHoldingRegistersRequest,
    4: ReadInputRegistersRequest,
}

# Standard names (Modbus Application Protocol v1.1b3, section 7). pymodbus's ExcCodes
# has no human names and misspells 0x0A, so the names live here.
EXCEPTION_NAMES: Final[dict[int, str]] = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x07: "negative acknowledge",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}
#: Exception codes with which a gateway says the addressed device is not there.
GATEWAY_ABSENT_CODES: Final = frozenset({0x0A, 0x0B})

_HEADER: Final = struct.Struct(">HHHB")
_MAX_LENGTH: Final = 254  # unit id + a PDU of at most 253 bytes


class ReadOnlyError(UsageError):
    """A function code that could write to a device or change its state was asked for."""


def exception_name(code: int) -> str:
    """The standard name of a Modbus exception code, or a note that it is non-standard."""
    return EXCEPTION_NAMES.get(code, f"non-standard exception code {code:#04x}")


def check_read_only(function: int) -> None:
    """Refuse, before anything is sent, every function code that is not a plain read."""
    if function in READ_FUNCTIONS:
        return
    if function in WRITE_OR_DIAGNOSTIC_FUNCTIONS:
        name = WRITE_OR_DIAGNOSTIC_FUNCTIONS[function]
        raise ReadOnlyError(
            f"function code {function} ({name}) can change a device: mcptool only reads; "
            "use 1, 2, 3 or 4"
        )
    raise ReadOnlyError(f"function code {function} is not a read: use 1, 2, 3 or 4")


def check_read_only_pdu(pdu: bytes) -> None:
    """Refuse any request PDU but a read, Read Device Identification or Report Server ID.

    The last guard before the socket: whatever a caller builds, only these go out.
    """
    if not pdu:
        raise ReadOnlyError("empty request PDU")
    function = pdu[0]
    if function == READ_DEVICE_IDENTIFICATION and pdu[1:2] == b"\x0e":
        return
    if function == REPORT_SERVER_ID and len(pdu) == 1:
        return
    check_read_only(function)


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """One read request shape: function, address and count, encoded once."""

    function: int = 3
    address: int = 0
    count: int = 1
    pdu: bytes = field(init=False, repr=False, compare=False)
    expected_bytes: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_read_only(self.function)
        if not 0 <= self.address <= 0xFFFF:
            raise UsageError(f"address {self.address} is out of range: use 0-65535")
        limit = _MAX_COUNT[self.function]
        if not 1 <= self.count <= limit:
            raise UsageError(
                f"count {self.count} is out of range for function {self.function}: use 1-{limit}"
            )
        if self.address + self.count > 0x10000:
            raise UsageError(
                f"address {self.address} + count {self.count} runs past register 65535"
            )
        body = _REQUEST_CLASSES[self.function](address=self.address, count=self.count).encode()
        object.__setattr__(self, "pdu", bytes([self.function]) + body)
        per_item = 2 if self.function in (3, 4) else 0
        expected = self.count * 2 if per_item else (self.count + 7) // 8
        object.__setattr__(self, "expected_bytes", expected)


def identification_request_pdu(read_code: int, object_id: int) -> bytes:
    """PDU of a Read Device Identification request (0x2B / MEI 0x0E)."""
    request = ReadDeviceInformationRequest(read_code=read_code, object_id=object_id)
    return bytes([READ_DEVICE_IDENTIFICATION]) + request.encode()


def report_server_id_pdu() -> bytes:
    """PDU of a Report Server ID request (0x11)."""
    return bytes([REPORT_SERVER_ID]) + ReportDeviceIdRequest().encode()


def frame(transaction_id: int, unit: int, pdu: bytes) -> bytes:
    """An MBAP header (protocol id 0) in front of ``pdu``."""
    return _HEADER.pack(transaction_id, 0, len(pdu) + 1, unit) + pdu


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
    #: Exact PDU data length after the byte count (reads), or None (variable replies).
    data_bytes: int | None = None


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
    if not 2 <= length <= _MAX_LENGTH:
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
    elif expect.data_bytes is not None:
        if have < 9:
            return NEED_MORE
        verdict = _check_read_sizes(length, buffer[8], expect.data_bytes)
        if verdict is not None:
            return verdict
    if have < 6 + length:
        return NEED_MORE
    return Answer(bytes(buffer[7 : 6 + length]), 6 + length)


def _check_read_sizes(length: int, byte_count: int, wanted: int) -> Malformed | None:
    # The requested count is the reference: whichever of the two size fields disagrees
    # with it is the broken one; if both do, a self-consistent frame means the device
    # sent a different amount of data, an inconsistent one means the framing is broken.
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


_DECODER: Final = DecodePDU(is_server=False)


def decode_pdu(pdu: bytes) -> ModbusPDU | None:
    """pymodbus's view of a well-formed reply PDU, or None when it cannot decode it."""
    return _DECODER.decode(pdu)


def read_values(request: ProbeRequest, pdu: bytes) -> tuple[int, ...] | tuple[bool, ...]:
    """Register values or bits of a checked normal reply to ``request``."""
    decoded = decode_pdu(pdu)
    if decoded is None:  # pragma: no cover - check_reply already vetted the sizes
        raise ValueError(f"pymodbus could not decode {pdu.hex(' ')}")
    if request.function in (3, 4):
        return tuple(decoded.registers)
    return tuple(decoded.bits[: request.count])
