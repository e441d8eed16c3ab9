"""The write path: the one way mcptool sends a request that changes a device.

Probe, scan, identification and the gateway's poller hold a ``ModbusConnection``, whose
``exchange`` passes every PDU through the read-only guard (``pdu.check_read_only_pdu``);
none of them imports this module, and a test says so. A write is sent only through a
``WriteConnection``, opened on purpose by ``mcptool write``. Its guard
(``check_write_pdu``) still refuses anything the core does not know or that is not well
formed, so a write is always a complete, valid request of a registered function.

``plan_write`` turns (address, typed values) into the request and says which read
confirms it; ``WriteConnection.exchange`` sends it. Bytes and fields come from the
function entries (``functions``); no socket here beyond the driver's.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import ClassVar, Final

from mcptool.errors import UsageError
from mcptool.modbus.connection import ModbusConnection
from mcptool.modbus.datatypes import DataTypeError, codec
from mcptool.modbus.functions import (
    FUNCTIONS,
    MASK_WRITE_REGISTER,
    READ_WRITE_REGISTERS,
    WRITE_MULTIPLE_COILS,
    WRITE_MULTIPLE_REGISTERS,
    WRITE_SINGLE_COIL,
    WRITE_SINGLE_REGISTER,
    Function,
    PduError,
)
from mcptool.modbus.modicon import Address
from mcptool.modbus.registermap import Table
from mcptool.modbus.serial_line import SerialBus

__all__ = [
    "WRITE_FUNCTIONS",
    "WriteBus",
    "WriteConnection",
    "WriteError",
    "WritePlan",
    "check_write_pdu",
    "plan_write",
]

#: The functions ``mcptool write`` sends, by code.
WRITE_FUNCTIONS: Final = (5, 6, 15, 16, 22, 23)


class WriteError(UsageError):
    """A write that cannot be built (a read-only table, a value that does not fit, ...)."""


def check_write_pdu(pdu: bytes) -> Function:
    """The entry of a well-formed request PDU of a registered function; ``WriteError`` else."""
    pdu = bytes(pdu)
    entry = FUNCTIONS.get(pdu[0]) if pdu else None
    if entry is None:
        raise WriteError(f"request PDU {pdu[:8].hex(' ')!r} names no known function: not sent")
    try:
        entry.parse_request(pdu)
    except PduError as exc:
        raise WriteError(f"{entry.name} request refused ({exc.reason}): nothing was sent") from None
    return entry


class WriteConnection(ModbusConnection):
    """A connection that may send writes: the driver of ``ModbusConnection``, another guard.

    Only ``mcptool write`` opens one. It shares the driver (framing, stale replies,
    every failure told apart) and differs in one thing: the guard its ``exchange``
    calls, which admits any well-formed request of a registered function.
    """

    __slots__ = ()

    guard = staticmethod(check_write_pdu)


class WriteBus(SerialBus):
    """A serial bus that may send writes: ``SerialBus`` with ``WriteConnection``'s guard.

    Only ``mcptool write`` opens one, for a device on a serial line. It keeps its own
    registry of open ports: a read-only user of a port is never handed a bus that writes,
    and a write never borrows a read-only bus whose guard would refuse it.
    """

    _open: ClassVar[dict[tuple[int, str], SerialBus]] = {}

    guard = staticmethod(check_write_pdu)

    def close(self) -> None:
        super().close()
        # ``SerialBus.close`` forgets the port in ``SerialBus``'s registry, not this one.
        for key, bus in list(WriteBus._open.items()):
            if bus is self and not self.usable:
                del WriteBus._open[key]


@dataclass(frozen=True, slots=True)
class WritePlan:
    """One write request and how to confirm it: the read of the span it changed."""

    function: int
    pdu: bytes
    table: Table
    address: int
    #: Registers (or bits) written, in address order: what the read-back must show.
    expected: tuple[int, ...] | tuple[bool, ...]
    #: For mask write (22): the masks; the read-back is checked against them.
    masks: tuple[int, int] | None = None

    @property
    def count(self) -> int:
        return len(self.expected)


def plan_write(
    address: Address,
    values: list[str],
    *,
    type: str = "uint16",
    order: str = "ABCD",
    scale: float = 1.0,
    length: int | None = None,
    function: int | None = None,
) -> WritePlan:
    """The request that writes ``values`` (as typed) at ``address``, and its expectation.

    The function follows from the table and the size unless ``function`` says otherwise:
    a coil takes 5 (one) or 15 (several); a holding register 6 (one register) or 16.
    22 takes two values (AND and OR masks); 23 writes and reads back in one request.
    """
    if address.table in (Table.INPUT, Table.DISCRETE):
        raise WriteError(
            f"{address.text or address.label()} is in the {address.table.value} table, which "
            "no Modbus function writes: writes go to coils (00001) or holding registers (40001)"
        )
    if not values:
        raise WriteError("no value to write: give at least one VALUE")
    if function is not None and function not in WRITE_FUNCTIONS:
        raise WriteError(f"function {function} is not a write: use one of 5, 6, 15, 16, 22, 23")
    if address.table is Table.COIL:
        return _plan_coils(address, values, function)
    if function == 22:
        return _plan_mask(address, values)
    registers = _registers(values, type, order, scale, length)
    if address.address + len(registers) > 0x10000:
        raise WriteError(f"{len(registers)} registers from {address.text} run past 65535")
    chosen = function or (6 if len(registers) == 1 else 16)
    if chosen in (5, 15):
        raise WriteError(f"function {chosen} writes coils; {address.text} is a holding register")
    if chosen == 6:
        if len(registers) != 1:
            raise WriteError(f"function 6 writes one register; {len(registers)} given: use -f 16")
        pdu = WRITE_SINGLE_REGISTER.request(address.address, registers[0])
    elif chosen == 16:
        _limit(len(registers), WRITE_MULTIPLE_REGISTERS.max_count, 16)
        pdu = WRITE_MULTIPLE_REGISTERS.request(address.address, registers)
    else:  # 23: write, then read the same span back, in one transaction
        _limit(len(registers), READ_WRITE_REGISTERS.max_write, 23)
        pdu = READ_WRITE_REGISTERS.request(
            address.address, len(registers), address.address, registers
        )
    return WritePlan(chosen, pdu, Table.HOLDING, address.address, tuple(registers))


def _limit(count: int, limit: int, function: int) -> None:
    if count > limit:
        raise WriteError(f"function {function} writes at most {limit} registers, {count} given")


def _plan_coils(address: Address, values: list[str], function: int | None) -> WritePlan:
    bits = tuple(_bit(v) for v in values)
    chosen = function or (5 if len(bits) == 1 else 15)
    if chosen not in (5, 15):
        raise WriteError(f"function {chosen} writes registers; {address.text} is a coil")
    if chosen == 5:
        if len(bits) != 1:
            raise WriteError(f"function 5 writes one coil; {len(bits)} given: use -f 15")
        pdu = WRITE_SINGLE_COIL.request(address.address, bits[0])
    else:
        if address.address + len(bits) > 0x10000:
            raise WriteError(f"{len(bits)} coils from {address.text} run past 65535")
        if len(bits) > WRITE_MULTIPLE_COILS.max_count:
            raise WriteError(
                f"function 15 writes at most {WRITE_MULTIPLE_COILS.max_count} coils, "
                f"{len(bits)} given"
            )
        pdu = WRITE_MULTIPLE_COILS.request(address.address, bits)
    return WritePlan(chosen, pdu, Table.COIL, address.address, bits)


def _plan_mask(address: Address, values: list[str]) -> WritePlan:
    if len(values) != 2:
        raise WriteError("function 22 takes two values: AND_MASK OR_MASK (e.g. 0xFF00 0x0012)")
    and_mask, or_mask = (_integer(v, 0, 0xFFFF, "mask") for v in values)
    pdu = MASK_WRITE_REGISTER.request(address.address, and_mask, or_mask)
    # The expected register depends on the old value: filled in by the caller.
    return WritePlan(22, pdu, Table.HOLDING, address.address, (), (and_mask, or_mask))


def masked(old: int, and_mask: int, or_mask: int) -> int:
    """The register after a mask write (specification 6.16)."""
    return (old & and_mask) | (or_mask & ~and_mask & 0xFFFF)


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


_TRUE: Final = frozenset({"1", "true", "on", "yes"})
_FALSE: Final = frozenset({"0", "false", "off", "no"})


def _bit(text: str) -> bool:
    key = text.strip().lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise WriteError(f"coil value {_short(text)} is not 0/1, true/false or on/off")


def _integer(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text.strip(), 0)
    except ValueError:
        raise WriteError(f"{what} {_short(text)} is not an integer (decimal or 0x hex)") from None
    if not low <= value <= high:
        raise WriteError(f"{what} {_short(text)} is out of range: use {low}-{high}")
    return value


_INT_RANGES: Final = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


def _registers(
    values: list[str], type: str, order: str, scale: float, length: int | None
) -> list[int]:
    """The registers of ``values`` encoded as ``type`` (raw = value / scale)."""
    try:
        if type == "string":
            text = " ".join(values)
            size = length or max(1, (len(text.encode()) + 1) // 2)
            return codec("string", order, size).encode(text)
        registers: list[int] = []
        one = codec(type, order)
        for text in values:
            registers.extend(one.encode(_typed(text, type, scale)))
    except DataTypeError as exc:  # a float32 beyond its range, a string too long, ...
        raise WriteError(f"{exc}: nothing was sent") from None
    return registers


def _typed(text: str, type: str, scale: float) -> bool | int | float:
    if type == "bool":
        return _bit(text)
    exact: int | None = None
    with contextlib.suppress(ValueError):
        exact = int(text.strip(), 0)  # whole numbers stay exact (uint64 beyond 2**53)
    try:
        value = float(text) if exact is None else float(exact)
    except (ValueError, OverflowError):
        raise WriteError(f"value {_short(text)} is not a number for type {type}") from None
    if not math.isfinite(value):
        raise WriteError(f"value {_short(text)} is not a finite number")
    if type in _INT_RANGES:
        low, high = _INT_RANGES[type]
        if exact is not None and scale == 1.0:
            rounded = exact
        else:
            raw = value / scale
            rounded = round(raw)
            if abs(rounded - raw) > 1e-9 * max(1.0, abs(raw)):
                after = f" after --scale {scale}" if scale != 1.0 else ""
                raise WriteError(f"value {_short(text)} is not a whole {type}{after}")
        if not low <= rounded <= high:
            raise WriteError(f"value {_short(text)} does not fit {type} ({low}..{high})")
        return rounded
    return value / scale
