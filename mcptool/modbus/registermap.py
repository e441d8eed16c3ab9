"""Register maps: points, their data types and byte orders, and read planning.

A point names a value in one of the four Modbus tables. ``plan_reads`` merges
neighbouring points of a table into as few requests as the protocol allows (at most 125
registers or 2000 bits a read), filling holes of up to ``max_gap`` registers, because a
round trip costs far more than a few unused registers. Each planned ``ReadRequest`` then
decodes its reply for all of its points at once: runs of equal, adjacent points (100
float32 values in a row is the common case) are unpacked with one ``struct`` call.

Byte and word orders use the letters of the 32-bit value ``0xAABBCCDD`` as the device
sends them: ABCD is big-endian (the Modbus default), DCBA little-endian, BADC swaps the
bytes in each register, CDAB swaps the registers (for 64-bit values the whole register
order is reversed). For 16-bit values only the byte swap matters.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from math import ceil

from mcptool.modbus.datatypes import codec, swap_bytes
from mcptool.modbus.functions import (
    FUNCTIONS,
    READ_COILS,
    READ_HOLDING_REGISTERS,
    ReadBits,
    ReadRegisters,
)

__all__ = [
    "MAX_READ_BITS",
    "MAX_READ_REGISTERS",
    "TABLE_ALIASES",
    "ByteOrder",
    "DataType",
    "Point",
    "ReadRequest",
    "Table",
    "Value",
    "plan_reads",
]

# The limits and function codes are the core's (``functions``); named here for the planner.
MAX_READ_REGISTERS = READ_HOLDING_REGISTERS.max_count  # 125
MAX_READ_BITS = READ_COILS.max_count  # 2000

Value = bool | int | float | str


class Table(StrEnum):
    COIL = "coil"
    DISCRETE = "discrete"
    INPUT = "input"
    HOLDING = "holding"

    @property
    def function(self) -> int:
        return _READS[self].code

    @property
    def is_bits(self) -> bool:
        return isinstance(_READS[self], ReadBits)


# Each table is read by the entry that names it (``ReadBits.table`` / ``ReadRegisters.table``).
_READS: dict[Table, ReadBits | ReadRegisters] = {
    Table(entry.table): entry
    for entry in FUNCTIONS.values()
    if isinstance(entry, ReadBits | ReadRegisters) and entry.table
}


def _aliases(table: Table) -> list[str]:
    # "read holding registers" -> holding, holding_register, holding_registers
    plural = _READS[table].name.removeprefix("read ").replace(" ", "_")
    return [table.value, plural.removesuffix("s"), plural]


#: Names a config may give a table (``coils``, ``holding_registers``, ...): the table.
TABLE_ALIASES: dict[str, str] = {alias: t.value for t in Table for alias in _aliases(t)}


class DataType(StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"


class ByteOrder(StrEnum):
    ABCD = "ABCD"
    DCBA = "DCBA"
    BADC = "BADC"
    CDAB = "CDAB"

    @property
    def swaps_bytes(self) -> bool:
        return self in (ByteOrder.BADC, ByteOrder.DCBA)

    @property
    def swaps_words(self) -> bool:
        return self in (ByteOrder.CDAB, ByteOrder.DCBA)


# struct codes and sizes in registers for the fixed-width types
_CODES: dict[DataType, tuple[str, int]] = {
    DataType.INT16: ("h", 1),
    DataType.UINT16: ("H", 1),
    DataType.INT32: ("i", 2),
    DataType.UINT32: ("I", 2),
    DataType.FLOAT32: ("f", 2),
    DataType.INT64: ("q", 4),
    DataType.UINT64: ("Q", 4),
    DataType.FLOAT64: ("d", 4),
}


@dataclass(frozen=True, slots=True)
class Point:
    """One value on a device. ``address`` is the 0-based protocol address.

    ``length`` is the number of characters of a string; a bool in the input or holding
    table is the register being non-zero, or its bit ``bit`` (0 = least significant).
    """

    name: str
    table: Table
    address: int
    type: DataType = DataType.UINT16
    order: ByteOrder = ByteOrder.ABCD
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    length: int = 0
    bit: int | None = None
    decimals: int | None = None

    def __post_init__(self) -> None:
        if self.table.is_bits and self.type is not DataType.BOOL:
            raise ValueError(f"point {self.name}: a {self.table} holds bits, so its type is bool")
        if self.bit is not None and (self.type is not DataType.BOOL or not 0 <= self.bit <= 15):
            raise ValueError(f"point {self.name}: `bit` (0-15) is for bool points in registers")
        if self.type is DataType.STRING and self.length <= 0:
            raise ValueError(f"point {self.name}: a string needs `length` (characters)")
        if self.address < 0 or self.end > 65536:
            raise ValueError(f"point {self.name}: address range outside 0-65535")

    @property
    def width(self) -> int:
        """Registers (or bits, in a bit table) that the point occupies."""
        if self.table.is_bits or self.type is DataType.BOOL:
            return 1
        if self.type is DataType.STRING:
            return ceil(self.length / 2)
        return _CODES[self.type][1]

    @property
    def end(self) -> int:
        return self.address + self.width

    @property
    def scaled(self) -> bool:
        return self.scale != 1.0 or self.offset != 0.0 or self.decimals is not None


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read of ``count`` registers or bits from ``address``, covering ``points``."""

    table: Table
    address: int
    count: int
    points: tuple[Point, ...]
    _decoders: tuple[Callable[[bytes], list[Value]], ...] = field(
        default=(), repr=False, compare=False
    )

    @property
    def function(self) -> int:
        return self.table.function

    @property
    def pdu(self) -> bytes:
        """The request PDU, built by the table's entry in the Modbus core."""
        return _READS[self.table].request(self.address, self.count)

    def decode(self, data: bytes) -> list[Value]:
        """Values of ``points`` (in order) from the data bytes of the reply."""
        decoders = self._decoders or _build_decoders(self)
        if len(decoders) == 1:
            return decoders[0](data)
        values: list[Value] = []
        for decode in decoders:
            values.extend(decode(data))
        return values

    def split(self) -> list[ReadRequest]:
        """Two requests covering half of the points each (to find the one a device refuses)."""
        half = len(self.points) // 2
        return [_request(self.table, self.points[:half]), _request(self.table, self.points[half:])]


def plan_reads(
    points: Iterable[Point],
    *,
    max_gap: int = 10,
    max_registers: int = MAX_READ_REGISTERS,
    max_bits: int = MAX_READ_BITS,
) -> list[ReadRequest]:
    """As few reads as cover ``points``: neighbours merged across holes of <= ``max_gap``.

    The result is ordered by table and address; every point is in exactly one request
    (points that overlap, e.g. a bit and its register, share the request).
    """
    by_table: dict[Table, list[Point]] = {}
    for point in points:
        by_table.setdefault(point.table, []).append(point)
    requests: list[ReadRequest] = []
    for table in Table:
        group = sorted(by_table.get(table, ()), key=lambda p: (p.address, p.end))
        limit = max_bits if table.is_bits else max_registers
        gap = max_gap * 16 if table.is_bits else max_gap
        current: list[Point] = []
        start = end = 0
        for point in group:
            if point.width > limit:
                raise ValueError(f"point {point.name}: {point.width} registers exceed one read")
            if current and point.address - end <= gap and max(end, point.end) - start <= limit:
                current.append(point)
                end = max(end, point.end)
                continue
            if current:
                requests.append(_request(table, current))
            current, start, end = [point], point.address, point.end
        if current:
            requests.append(_request(table, current))
    return requests


def _request(table: Table, points: Sequence[Point]) -> ReadRequest:
    ordered = tuple(points)
    start = min(p.address for p in ordered)
    end = max(p.end for p in ordered)
    request = ReadRequest(table, start, end - start, ordered)
    object.__setattr__(request, "_decoders", _build_decoders(request))
    return request


def _build_decoders(request: ReadRequest) -> tuple[Callable[[bytes], list[Value]], ...]:
    decoders: list[Callable[[bytes], list[Value]]] = []
    points = request.points
    i = 0
    while i < len(points):
        j = i + 1
        if not request.table.is_bits and points[i].type in _CODES:
            # extend a run of adjacent points of one type and order: one struct call
            while (
                j < len(points)
                and points[j].type is points[i].type
                and points[j].order is points[i].order
                and points[j].bit is None
                and points[j].address == points[j - 1].end
            ):
                j += 1
        decoders.append(_run_decoder(request, points[i:j]))
        i = j
    return tuple(decoders)


def _run_decoder(request: ReadRequest, run: Sequence[Point]) -> Callable[[bytes], list[Value]]:
    first = run[0]
    offset = first.address - request.address
    if request.table.is_bits:
        return lambda data: [bool(data[offset >> 3] >> (offset & 7) & 1)]
    if first.type is DataType.BOOL:
        word = codec("uint16", first.order)
        if first.bit is None:
            return lambda data: [word.decode_bytes(data, offset) != 0]
        bit = first.bit
        return lambda data: [bool(word.decode_bytes(data, offset) >> bit & 1)]  # type: ignore[operator]
    if first.type is DataType.STRING:
        text = codec("string", first.order, first.width)
        return lambda data: [str(text.decode_bytes(data, offset))[: first.length]]
    return _number_decoder(run, offset)


def _number_decoder(run: Sequence[Point], offset: int) -> Callable[[bytes], list[Value]]:
    # datatypes.Codec decodes one value; a run of n equal values is one struct call with
    # the same trick (see datatypes): read the wire bytes, or the bytes swapped in each
    # register, big- or little-endian, so every order needs no Python loop.
    first = run[0]
    single = codec(first.type, first.order)
    code, words = _CODES[first.type]
    start, stop = offset * 2, (offset + words * len(run)) * 2
    endian = "<" if first.order.swaps_words and words > 1 else ">"
    unpack = struct.Struct(f"{endian}{len(run)}{code}").unpack
    swapped = single.swapped
    scaling = {(p.scale, p.offset, p.decimals) for p in run}
    same = next(iter(scaling)) if len(scaling) == 1 else None
    plain = same == (1.0, 0.0, None)

    def decode(data: bytes) -> list[Value]:
        raw = swap_bytes(data[start:stop]) if swapped else data[start:stop]
        values: list[Value] = list(unpack(raw))
        if plain:
            return values
        if same is not None:
            scale, off, decimals = same
            if decimals is None:
                return [v * scale + off for v in values]  # type: ignore[operator]
            return [round(v * scale + off, decimals) for v in values]  # type: ignore[operator]
        return [_scaled(p, v) for p, v in zip(run, values, strict=True)]

    return decode


def _scaled(point: Point, value: Value) -> Value:
    if not point.scaled:
        return value
    result = value * point.scale + point.offset  # type: ignore[operator]
    return round(result, point.decimals) if point.decimals is not None else result
