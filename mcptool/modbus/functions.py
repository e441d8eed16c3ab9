"""The Modbus core: one entry per function code, sans-IO (bytes in, fields or bytes out).

Everything mcptool knows about a function code lives in its entry here: its name, whether
it only reads, how a request and a normal response are built and parsed, the exact size
a PDU must have, and its limits (125 registers, 2000 bits, ...). Probe, scan, the poller,
the simulator and the read-only guard all ask this table; nothing else keeps a list of
function codes. The framing (MBAP today; RTU and RTU over TCP beside it) is a separate
layer that never looks inside a PDU beyond what an entry tells it (see ``mbap``).

Why our own entries rather than pymodbus's PDU classes at run time: every PDU must be
validated *whole* in both directions (a request's exact length before it is sent, a
server's view of a request, the exact reply size before the reply has arrived), and
pymodbus's classes decode leniently (trailing bytes are ignored, counts are checked
only on encode) and allocate an object per message. pymodbus stays the reference: the
tests check that every entry's requests and responses are pymodbus's bytes, frame for
frame (tests/modbus/test_functions.py).

Adding a function code: write one ``Function`` subclass (or reuse a shape), create its
instance and ``register()`` it; see docs/ARCHITECTURE.md ("Modbus").
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

__all__ = [
    "EXCEPTION_NAMES",
    "FUNCTIONS",
    "GATEWAY_ABSENT_CODES",
    "MAX_PDU",
    "DeviceInformation",
    "Diagnostics",
    "ExceptionCode",
    "Function",
    "MaskWriteRegister",
    "PduError",
    "ReadBits",
    "ReadDeviceIdentification",
    "ReadRegisters",
    "ReadWriteRegisters",
    "ReportServerId",
    "WriteMultipleCoils",
    "WriteMultipleRegisters",
    "WriteSingleCoil",
    "WriteSingleRegister",
    "exception_name",
    "exception_pdu",
    "function",
    "register",
]

MAX_PDU: Final = 253  # Modbus application protocol v1.1b3, 4.1: 256-byte RTU ADU - 3


class ExceptionCode(enum.IntEnum):
    """Exception codes of the specification (section 7)."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_ADDRESS = 0x02
    ILLEGAL_VALUE = 0x03
    DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    DEVICE_BUSY = 0x06
    NEGATIVE_ACKNOWLEDGE = 0x07
    MEMORY_PARITY_ERROR = 0x08
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_NO_RESPONSE = 0x0B


# pymodbus's ExcCodes has no human names and misspells 0x0A, so the names live here.
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


def exception_name(code: int) -> str:
    """The standard name of a Modbus exception code, or a note that it is non-standard."""
    return EXCEPTION_NAMES.get(code, f"non-standard exception code {code:#04x}")


def exception_pdu(function: int, code: int) -> bytes:
    """The exception response PDU to ``function`` with ``code``."""
    return bytes(((function | 0x80) & 0xFF, code & 0xFF))


class PduError(ValueError):
    """A PDU that does not fit its function: wrong length, a count out of range, ...

    ``code`` is the exception a server answers such a request with (0x03 illegal data
    value, or 0x02 when the address range runs past 65535, 0x01 for an unknown sub-type).
    """

    def __init__(self, reason: str, code: int = ExceptionCode.ILLEGAL_VALUE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


_U16: Final = struct.Struct(">H")
_ADDR_COUNT: Final = struct.Struct(">HH")
_ADDR_COUNT_BC: Final = struct.Struct(">HHB")
_MASK: Final = struct.Struct(">HHH")
_RW_HEAD: Final = struct.Struct(">HHHHB")


def _exact(pdu: bytes, size: int, what: str) -> None:
    if len(pdu) != size:
        raise PduError(f"{what} is {len(pdu)} bytes, must be exactly {size}")


def _count(count: int, limit: int, what: str = "count") -> None:
    if not 1 <= count <= limit:
        raise PduError(f"{what} {count} is out of range: use 1-{limit}")


def _range(address: int, count: int) -> None:
    if not 0 <= address <= 0xFFFF:
        raise PduError(f"address {address} is out of range: use 0-65535")
    if address + count > 0x10000:
        raise PduError(
            f"address {address} + count {count} runs past 65535", ExceptionCode.ILLEGAL_ADDRESS
        )


def _u16(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFF:
        raise PduError(f"{what} {value} is out of range: use 0-65535")


def _pack_bits(bits: Sequence[bool]) -> bytes:
    # Bit 0 is the least significant bit of the first byte (specification 6.1).
    value = 0
    for i, bit in enumerate(bits):
        if bit:
            value |= 1 << i
    return value.to_bytes((len(bits) + 7) // 8, "little")


def _unpack_bits(data: bytes, count: int) -> tuple[bool, ...]:
    value = int.from_bytes(data, "little")
    return tuple(bool(value >> i & 1) for i in range(count))


def _counted_span(pdu: bytes) -> tuple[int, int]:
    if len(pdu) < 5:
        return -1, -1
    address, count = _ADDR_COUNT.unpack_from(pdu, 1)
    return address, address + max(count, 1) - 1


def _single_span(pdu: bytes) -> tuple[int, int]:
    if len(pdu) < 3:
        return -1, -1
    address = pdu[1] << 8 | pdu[2]
    return address, address


def _byte_counted(pdu: bytes, what: str) -> bytes:
    """The data of a ``function, byte count, data`` PDU, checked against its count."""
    if len(pdu) < 2 or pdu[1] != len(pdu) - 2:
        raise PduError(f"{what}: byte count does not match the PDU ({len(pdu)} bytes)")
    return pdu[2:]


@dataclass(frozen=True, slots=True)
class Function:
    """One function code: its name, whether it only reads, and its PDU rules.

    A subclass gives ``parse_request`` (every field checked; raises ``PduError``) and
    ``response_size``; its own typed ``request`` / ``response`` builders and
    ``parse_response`` carry the fields of that shape.
    """

    code: int
    name: str
    #: Changes nothing on the device, so a read-only client (probe, scan, poller) may send it.
    reads: bool = False
    #: The normal response's second byte counts the bytes that follow it.
    byte_counted: bool = False

    def parse_request(self, pdu: bytes) -> tuple[object, ...]:
        """The fields of a request PDU; ``PduError`` unless the whole PDU is well formed."""
        raise NotImplementedError

    def response_size(self, request: bytes) -> int | None:
        """Exact size of the normal response PDU to a checked ``request``; None if variable."""
        return None

    def request_size(self, head: bytes) -> int | None:
        """Size of the request PDU that starts with ``head``, for framings without a length
        (RTU): a number larger than ``len(head)`` may be a lower bound that becomes exact
        once that many bytes are there; None if only the frame's end can tell."""
        return None

    def span(self, pdu: bytes) -> tuple[int, int]:
        """First and last data address a request touches, or (-1, -1) (fault matching)."""
        return -1, -1


@dataclass(frozen=True, slots=True)
class _ReadAddressCount(Function):
    """The request all four plain reads share: address and count, 5 bytes."""

    def request(self, address: int, count: int) -> bytes:
        _count(count, self.max_count)
        _range(address, count)
        return bytes((self.code,)) + _ADDR_COUNT.pack(address, count)

    def request_size(self, head: bytes) -> int:
        return 5

    def parse_request(self, pdu: bytes) -> tuple[int, int]:
        _exact(pdu, 5, "the PDU")
        address, count = _ADDR_COUNT.unpack_from(pdu, 1)
        _count(count, self.max_count)
        _range(address, count)
        return address, count


@dataclass(frozen=True, slots=True)
class ReadBits(_ReadAddressCount):
    """0x01 read coils, 0x02 read discrete inputs."""

    reads: bool = True
    byte_counted: bool = True
    max_count: int = 2000
    #: The register-map table this function reads ("coil", "discrete").
    table: str = ""

    def response_size(self, request: bytes) -> int:
        return 2 + ((request[3] << 8 | request[4]) + 7) // 8

    def response(self, bits: Sequence[bool]) -> bytes:
        data = _pack_bits(bits)
        return bytes((self.code, len(data))) + data

    def parse_response(self, pdu: bytes, count: int) -> tuple[bool, ...]:
        data = _byte_counted(pdu, self.name)
        if len(data) != (count + 7) // 8:
            raise PduError(f"{self.name}: {len(data)} data bytes for {count} bits")
        return _unpack_bits(data, count)

    def span(self, pdu: bytes) -> tuple[int, int]:
        return _counted_span(pdu)


@dataclass(frozen=True, slots=True)
class ReadRegisters(_ReadAddressCount):
    """0x03 read holding registers, 0x04 read input registers."""

    reads: bool = True
    byte_counted: bool = True
    max_count: int = 125
    #: The register-map table this function reads ("holding", "input").
    table: str = ""

    def response_size(self, request: bytes) -> int:
        return 2 + 2 * (request[3] << 8 | request[4])

    def response(self, registers: Sequence[int] | bytes) -> bytes:
        """A response from register values, or from their wire bytes (the simulator's)."""
        data = (
            registers
            if isinstance(registers, bytes | bytearray)
            else struct.pack(f">{len(registers)}H", *registers)
        )
        return bytes((self.code, len(data))) + data

    def parse_response(self, pdu: bytes) -> tuple[int, ...]:
        data = _byte_counted(pdu, self.name)
        if len(data) % 2:
            raise PduError(f"{self.name}: odd byte count {len(data)}")
        return struct.unpack(f">{len(data) // 2}H", data)

    def span(self, pdu: bytes) -> tuple[int, int]:
        return _counted_span(pdu)


@dataclass(frozen=True, slots=True)
class _WriteSingle(Function):
    """0x05 / 0x06: address and value, 5 bytes; the response echoes the request."""

    def request_size(self, head: bytes) -> int:
        return 5

    def response_size(self, request: bytes) -> int:
        return 5

    def response(self, address: int, value: Any) -> bytes:
        return self.request(address, value)

    def parse_response(self, pdu: bytes) -> tuple[int, Any]:
        return self.parse_request(pdu)

    def span(self, pdu: bytes) -> tuple[int, int]:
        return _single_span(pdu)


@dataclass(frozen=True, slots=True)
class WriteSingleCoil(_WriteSingle):
    """0x05: the response echoes the request."""

    def request(self, address: int, value: bool) -> bytes:
        _u16(address, "address")
        return bytes((self.code,)) + _ADDR_COUNT.pack(address, 0xFF00 if value else 0)

    def parse_request(self, pdu: bytes) -> tuple[int, bool]:
        _exact(pdu, 5, "the PDU")
        address, value = _ADDR_COUNT.unpack_from(pdu, 1)
        if value not in (0xFF00, 0x0000):
            raise PduError(f"coil value {value:#06x}: must be 0xFF00 (on) or 0x0000 (off)")
        return address, value == 0xFF00


@dataclass(frozen=True, slots=True)
class WriteSingleRegister(_WriteSingle):
    """0x06: the response echoes the request."""

    def request(self, address: int, value: int) -> bytes:
        _u16(address, "address")
        _u16(value, "value")
        return bytes((self.code,)) + _ADDR_COUNT.pack(address, value)

    def parse_request(self, pdu: bytes) -> tuple[int, int]:
        _exact(pdu, 5, "the PDU")
        address, value = _ADDR_COUNT.unpack_from(pdu, 1)
        return address, value


@dataclass(frozen=True, slots=True)
class _WriteMultiple(Function):
    """0x0F / 0x10: address, count, byte count, data; the response is address and count."""

    max_count: int = 0

    def _data_size(self, count: int) -> int:
        raise NotImplementedError

    def request_size(self, head: bytes) -> int:
        return 6 + head[5] if len(head) >= 6 else 6

    def parse_head(self, pdu: bytes) -> tuple[int, int, bytes]:
        if len(pdu) < 6:
            raise PduError(f"the PDU is {len(pdu)} bytes, at least 6 needed")
        address, count, nbytes = _ADDR_COUNT_BC.unpack_from(pdu, 1)
        _count(count, self.max_count)
        if nbytes != self._data_size(count) or len(pdu) != 6 + nbytes:
            raise PduError(
                f"{self.name}: byte count {nbytes} and {len(pdu) - 6} data bytes "
                f"for {count} items (must be {self._data_size(count)})"
            )
        _range(address, count)
        return address, count, pdu[6:]

    def response_size(self, request: bytes) -> int:
        return 5

    def response(self, address: int, count: int) -> bytes:
        return bytes((self.code,)) + _ADDR_COUNT.pack(address, count)

    def parse_response(self, pdu: bytes) -> tuple[int, int]:
        _exact(pdu, 5, "the response")
        address, count = _ADDR_COUNT.unpack_from(pdu, 1)
        return address, count

    def span(self, pdu: bytes) -> tuple[int, int]:
        return _counted_span(pdu)


@dataclass(frozen=True, slots=True)
class WriteMultipleCoils(_WriteMultiple):
    max_count: int = 1968

    def _data_size(self, count: int) -> int:
        return (count + 7) // 8

    def request(self, address: int, bits: Sequence[bool]) -> bytes:
        _count(len(bits), self.max_count)
        _range(address, len(bits))
        data = _pack_bits(bits)
        return bytes((self.code,)) + _ADDR_COUNT_BC.pack(address, len(bits), len(data)) + data

    def parse_request(self, pdu: bytes) -> tuple[int, tuple[bool, ...]]:
        address, count, data = self.parse_head(pdu)
        return address, _unpack_bits(data, count)


@dataclass(frozen=True, slots=True)
class WriteMultipleRegisters(_WriteMultiple):
    max_count: int = 123

    def _data_size(self, count: int) -> int:
        return 2 * count

    def request(self, address: int, registers: Sequence[int]) -> bytes:
        _count(len(registers), self.max_count)
        _range(address, len(registers))
        data = struct.pack(f">{len(registers)}H", *registers)
        return bytes((self.code,)) + _ADDR_COUNT_BC.pack(address, len(registers), len(data)) + data

    def parse_request(self, pdu: bytes) -> tuple[int, tuple[int, ...]]:
        address, count, data = self.parse_head(pdu)
        return address, struct.unpack(f">{count}H", data)


@dataclass(frozen=True, slots=True)
class MaskWriteRegister(Function):
    """0x16: address, AND mask, OR mask; the response echoes the request."""

    def request(self, address: int, and_mask: int, or_mask: int) -> bytes:
        for value, what in ((address, "address"), (and_mask, "AND mask"), (or_mask, "OR mask")):
            _u16(value, what)
        return bytes((self.code,)) + _MASK.pack(address, and_mask, or_mask)

    def request_size(self, head: bytes) -> int:
        return 7

    def parse_request(self, pdu: bytes) -> tuple[int, int, int]:
        _exact(pdu, 7, "the PDU")
        address, and_mask, or_mask = _MASK.unpack_from(pdu, 1)
        return address, and_mask, or_mask

    def response_size(self, request: bytes) -> int:
        return 7

    def response(self, address: int, and_mask: int, or_mask: int) -> bytes:
        return self.request(address, and_mask, or_mask)

    def parse_response(self, pdu: bytes) -> tuple[int, int, int]:
        return self.parse_request(pdu)


@dataclass(frozen=True, slots=True)
class ReadWriteRegisters(Function):
    """0x17: write registers, then read registers, in one request; it writes."""

    byte_counted: bool = True
    max_read: int = 125
    max_write: int = 121

    def request(
        self, read_address: int, read_count: int, write_address: int, registers: Sequence[int]
    ) -> bytes:
        _count(read_count, self.max_read, "read count")
        _range(read_address, read_count)
        _count(len(registers), self.max_write, "write count")
        _range(write_address, len(registers))
        head = _RW_HEAD.pack(
            read_address, read_count, write_address, len(registers), 2 * len(registers)
        )
        return bytes((self.code,)) + head + struct.pack(f">{len(registers)}H", *registers)

    def request_size(self, head: bytes) -> int:
        return 10 + head[9] if len(head) >= 10 else 10

    def parse_request(self, pdu: bytes) -> tuple[int, int, int, tuple[int, ...]]:
        if len(pdu) < 10:
            raise PduError(f"the PDU is {len(pdu)} bytes, at least 10 needed")
        read_address, read_count, write_address, write_count, nbytes = _RW_HEAD.unpack_from(pdu, 1)
        _count(read_count, self.max_read, "read count")
        _range(read_address, read_count)
        _count(write_count, self.max_write, "write count")
        _range(write_address, write_count)
        if nbytes != 2 * write_count or len(pdu) != 10 + nbytes:
            raise PduError(f"{self.name}: byte count {nbytes} for {write_count} registers")
        return read_address, read_count, write_address, struct.unpack(f">{write_count}H", pdu[10:])

    def response_size(self, request: bytes) -> int:
        return 2 + 2 * (request[3] << 8 | request[4])

    def response(self, registers: Sequence[int]) -> bytes:
        data = struct.pack(f">{len(registers)}H", *registers)
        return bytes((self.code, len(data))) + data

    def parse_response(self, pdu: bytes) -> tuple[int, ...]:
        data = _byte_counted(pdu, self.name)
        if len(data) % 2:
            raise PduError(f"{self.name}: odd byte count {len(data)}")
        return struct.unpack(f">{len(data) // 2}H", data)


@dataclass(frozen=True, slots=True)
class Diagnostics(Function):
    """0x08: a sub-function and its data; a normal response echoes them (sub-function 0)."""

    def request(self, sub_function: int, data: bytes = b"\x00\x00") -> bytes:
        _u16(sub_function, "sub-function")
        return bytes((self.code,)) + _U16.pack(sub_function) + data

    def request_size(self, head: bytes) -> int | None:
        return None  # the data's length is the sub-function's: only the CRC tells the end

    def parse_request(self, pdu: bytes) -> tuple[int, bytes]:
        if len(pdu) < 3 or len(pdu) > MAX_PDU:
            raise PduError(f"the PDU is {len(pdu)} bytes, 3-{MAX_PDU} allowed")
        return _U16.unpack_from(pdu, 1)[0], pdu[3:]

    def response(self, sub_function: int, data: bytes) -> bytes:
        return self.request(sub_function, data)

    def parse_response(self, pdu: bytes) -> tuple[int, bytes]:
        return self.parse_request(pdu)


@dataclass(frozen=True, slots=True)
class ReportServerId(Function):
    """0x11: no request data; the response carries device-specific bytes.

    The data is server id, run indicator (0x00/0xFF) and additional data by the
    specification, but devices differ in the server id's length, so it stays bytes
    here and ``identify`` interprets it.
    """

    reads: bool = True
    byte_counted: bool = True

    def request(self) -> bytes:
        return bytes((self.code,))

    def request_size(self, head: bytes) -> int:
        return 1

    def parse_request(self, pdu: bytes) -> tuple[()]:
        _exact(pdu, 1, "the PDU")
        return ()

    def response(self, data: bytes) -> bytes:
        if not 1 <= len(data) <= MAX_PDU - 2:
            raise PduError(f"server id data of {len(data)} bytes: 1-{MAX_PDU - 2} allowed")
        return bytes((self.code, len(data))) + data

    def parse_response(self, pdu: bytes) -> bytes:
        data = _byte_counted(pdu, self.name)
        if not data:
            raise PduError(f"{self.name}: no data")
        return data


MEI_DEVICE_IDENTIFICATION: Final = 0x0E


@dataclass(frozen=True, slots=True)
class DeviceInformation:
    """A parsed 0x2B/0x0E response: objects in wire order (an id may repeat)."""

    read_code: int
    conformity: int
    more_follows: bool
    next_object_id: int
    objects: tuple[tuple[int, bytes], ...] = field(default=())


def _check_identification(read_code: int, object_id: int) -> None:
    if not 1 <= read_code <= 4:
        raise PduError(f"read device id code {read_code}: use 1-4")
    if not 0 <= object_id <= 0xFF:
        raise PduError(f"object id {object_id}: use 0-255")


@dataclass(frozen=True, slots=True)
class ReadDeviceIdentification(Function):
    """0x2B with MEI type 0x0E: read codes 1-3 stream objects, 4 reads one object."""

    reads: bool = True

    def request(self, read_code: int, object_id: int = 0) -> bytes:
        _check_identification(read_code, object_id)
        return bytes((self.code, MEI_DEVICE_IDENTIFICATION, read_code, object_id))

    def request_size(self, head: bytes) -> int:
        return 4

    def parse_request(self, pdu: bytes) -> tuple[int, int]:
        if len(pdu) < 2 or pdu[1] != MEI_DEVICE_IDENTIFICATION:
            mei = pdu[1] if len(pdu) > 1 else None
            raise PduError(
                f"MEI type {mei}: only 14 (read device identification) is supported",
                ExceptionCode.ILLEGAL_FUNCTION,
            )
        _exact(pdu, 4, "the PDU")
        _check_identification(pdu[2], pdu[3])
        return pdu[2], pdu[3]

    def response(
        self,
        read_code: int,
        conformity: int,
        objects: Iterable[tuple[int, bytes]],
        *,
        more_follows: bool = False,
        next_object_id: int = 0,
    ) -> bytes:
        listed = list(objects)
        body = b"".join(bytes((oid, len(value))) + value for oid, value in listed)
        head = bytes(
            (
                self.code,
                MEI_DEVICE_IDENTIFICATION,
                read_code,
                conformity,
                0xFF if more_follows else 0x00,
                next_object_id,
                len(listed),
            )
        )
        if len(head) + len(body) > MAX_PDU:
            raise PduError(f"identification response of {len(head) + len(body)} bytes")
        return head + body

    def parse_response(self, pdu: bytes) -> DeviceInformation:
        if len(pdu) < 7 or pdu[1] != MEI_DEVICE_IDENTIFICATION:
            raise PduError(f"{self.name} response too short or not MEI 0x0E ({pdu.hex(' ')})")
        read_code, conformity, more, next_id, count = pdu[2:7]
        objects: list[tuple[int, bytes]] = []
        pos = 7
        for _ in range(count):
            if pos + 2 > len(pdu) or pos + 2 + pdu[pos + 1] > len(pdu):
                raise PduError(f"{self.name}: object {len(objects)} runs past the PDU")
            size = pdu[pos + 1]
            objects.append((pdu[pos], pdu[pos + 2 : pos + 2 + size]))
            pos += 2 + size
        if pos != len(pdu):
            raise PduError(f"{self.name}: {len(pdu) - pos} bytes after the last object")
        return DeviceInformation(read_code, conformity, more == 0xFF, next_id, tuple(objects))


#: The registry: every function code mcptool knows, keyed by its code.
FUNCTIONS: dict[int, Function] = {}


_F = TypeVar("_F", bound=Function)


def register(entry: _F) -> _F:
    """Add (or replace) the entry for ``entry.code``; returns it."""
    if not 1 <= entry.code <= 0x7F:
        raise ValueError(f"function code {entry.code}: use 1-127 (0x80 and up are exceptions)")
    FUNCTIONS[entry.code] = entry
    return entry


def function(code: int) -> Function | None:
    """The entry for ``code``, or None for a code mcptool does not know."""
    return FUNCTIONS.get(code)


READ_COILS: Final = register(ReadBits(0x01, "read coils", table="coil"))
READ_DISCRETE_INPUTS: Final = register(ReadBits(0x02, "read discrete inputs", table="discrete"))
READ_HOLDING_REGISTERS: Final = register(
    ReadRegisters(0x03, "read holding registers", table="holding")
)
READ_INPUT_REGISTERS: Final = register(ReadRegisters(0x04, "read input registers", table="input"))
WRITE_SINGLE_COIL: Final = register(WriteSingleCoil(0x05, "write single coil"))
WRITE_SINGLE_REGISTER: Final = register(WriteSingleRegister(0x06, "write single register"))
DIAGNOSTICS: Final = register(Diagnostics(0x08, "diagnostics"))
WRITE_MULTIPLE_COILS: Final = register(WriteMultipleCoils(0x0F, "write multiple coils"))
WRITE_MULTIPLE_REGISTERS: Final = register(WriteMultipleRegisters(0x10, "write multiple registers"))
REPORT_SERVER_ID: Final = register(ReportServerId(0x11, "report server id"))
MASK_WRITE_REGISTER: Final = register(MaskWriteRegister(0x16, "mask write register"))
READ_WRITE_REGISTERS: Final = register(ReadWriteRegisters(0x17, "read/write multiple registers"))
READ_DEVICE_IDENTIFICATION: Final = register(
    ReadDeviceIdentification(0x2B, "read device identification")
)
