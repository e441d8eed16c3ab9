"""The data model of a simulated device: four tables per unit, and the PDU handlers.

This module answers request PDUs (function code + data) with response PDUs, knowing
nothing about sockets, MBAP headers or faults (those are in ``server``). What a
well-formed request is, and its limits, is the Modbus core's (``mcptool.modbus.functions``):
each handler lets the function's entry parse the request, and answers the exception code
the entry names when it does not fit; the device adds only its data model.

Why not pymodbus's datastore and PDU classes: a request through them allocates a PDU
object, a datastore lookup chain and lists of Python ints per register; this module
keeps each table as a ``bytearray`` in wire format, so a read is one slice and one
``bytes`` concatenation. That is what makes the simulator faster than the stock pymodbus
server (see bench/simulator.py). pymodbus still provides the exception and
device-information constants.
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_right
from collections.abc import Callable

from pymodbus.constants import DeviceInformation

from mcptool.modbus import functions
from mcptool.modbus.datatypes import Codec, codec
from mcptool.modbus.functions import ExceptionCode, PduError, exception_pdu
from simulators.modbus.profile import BIT_TABLES, DeviceProfile, Point, UnitProfile
from simulators.modbus.values import Constant, Scalar

ILLEGAL_FUNCTION = int(ExceptionCode.ILLEGAL_FUNCTION)
ILLEGAL_ADDRESS = int(ExceptionCode.ILLEGAL_ADDRESS)
ILLEGAL_VALUE = int(ExceptionCode.ILLEGAL_VALUE)
DEVICE_FAILURE = int(ExceptionCode.DEVICE_FAILURE)

MAX_PDU = functions.MAX_PDU
# A device-identification answer spends 8 bytes of the PDU on its header.
_MEI_HEADER = 8
_INT_TYPES = {"int16", "uint16", "int32", "uint32", "int64", "uint64"}
_INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
_BIT_0, _BIT_1 = ord("0"), ord("1")


__all__ = ["DeviceState", "UnitState", "exception_pdu"]


class _Slot:
    """A point with its codec and where it lives, prepared for fast refreshes."""

    __slots__ = ("codec", "end", "point", "start")

    def __init__(self, point: Point) -> None:
        self.point = point
        self.start = point.address
        self.end = point.address + point.count
        self.codec: Codec | None = (
            None if point.table in BIT_TABLES else codec(point.type, point.order, point.length)
        )


class UnitState:
    """One unit id's four tables, kept in wire format, and its request handlers.

    Bit tables hold one ASCII ``'0'``/``'1'`` per address, so packing a coil read is a
    single ``int(bits[::-1], 2)``; register tables hold big-endian register bytes.
    """

    def __init__(self, profile: UnitProfile, now: Callable[[], float]) -> None:
        self.profile = profile
        self.id = profile.id
        self.now = now
        flat = profile.unmapped == "zero"
        self.slots = {p.name: _Slot(p) for p in profile.points}
        sizes = dict.fromkeys(("coil", "discrete", "holding", "input"), 0x10000 if flat else 0)
        for s in self.slots.values():
            sizes[s.point.table] = max(sizes[s.point.table], s.end)
        self.tables: dict[str, bytearray] = {
            t: bytearray([_BIT_0]) * n if t in BIT_TABLES else bytearray(2 * n)
            for t, n in sizes.items()
        }
        # 1 where an address may be read / written; checked with one C-level find().
        self.readable = {t: bytearray([1 if flat else 0]) * n for t, n in sizes.items()}
        self.writable = {t: bytearray([1 if flat else 0]) * n for t, n in sizes.items()}
        for s in self.slots.values():
            t = s.point.table
            self.readable[t][s.start : s.end] = b"\x01" * (s.end - s.start)
            w = 1 if s.point.writable else 0
            self.writable[t][s.start : s.end] = bytes([w]) * (s.end - s.start)
        self._dynamic: dict[str, tuple[list[int], list[_Slot]]] = {}
        self._index_dynamic()
        for s in self.slots.values():
            self._store(s, s.point.generator(0.0))
        self.identity = profile.identity.objects() if profile.identity else None
        self.server_id = profile.server_id
        self.handlers: dict[int, Callable[[bytes], bytes]] = {
            1: self._read_coils,
            2: self._read_discrete,
            3: self._read_holding,
            4: self._read_input,
            5: self._write_coil,
            6: self._write_register,
            15: self._write_coils,
            16: self._write_registers,
            0x16: self._mask_write_register,
            0x17: self._read_write_registers,
            0x11: self._report_server_id,
            0x2B: self._encapsulated,
        }

    # -- values ------------------------------------------------------------------------

    def _index_dynamic(self) -> None:
        self._dynamic.clear()
        for table in self.tables:
            slots = sorted(
                (
                    s
                    for s in self.slots.values()
                    if s.point.table == table and not s.point.generator.is_constant
                ),
                key=lambda s: s.start,
            )
            if slots:
                self._dynamic[table] = ([s.end for s in slots], slots)

    def _refresh(self, table: str, address: int, count: int) -> None:
        """Bring the points overlapping [address, address+count) up to the clock's time."""
        ends, slots = self._dynamic[table]
        i = bisect_right(ends, address)
        stop = address + count
        t = -1.0
        while i < len(slots) and slots[i].start < stop:
            if t < 0:
                t = self.now()
            slot = slots[i]
            self._store(slot, slot.point.generator(t))
            i += 1

    def _store(self, slot: _Slot, value: Scalar) -> None:
        point = slot.point
        table = self.tables[point.table]
        if slot.codec is None:
            table[slot.start] = _BIT_1 if value else _BIT_0
            return
        if point.type != "string" and point.type != "bool":
            value = (float(value) - point.offset) / point.scale  # type: ignore[arg-type]
            if point.type in _INT_TYPES:
                lo, hi = _INT_RANGES[point.type]
                value = 0 if math.isnan(value) else round(max(-1e30, min(1e30, value)))
                if not lo <= value <= hi:
                    # Counters wrap like real meters do; anything else sticks at its limit.
                    if point.generator.__class__.__name__ == "Counter":
                        value = lo + (value - lo) % (hi - lo + 1)
                    else:
                        value = max(lo, min(hi, value))
        table[2 * slot.start : 2 * slot.end] = slot.codec.encode_bytes(value)

    def value(self, name: str) -> Scalar:
        """The point's current value in engineering units (what a master would decode)."""
        slot = self.slots[name]
        table = self.tables[slot.point.table]
        if name in self._dynamic_names():
            self._refresh(slot.point.table, slot.start, 1)
        if slot.codec is None:
            return table[slot.start] == _BIT_1
        raw = slot.codec.decode_bytes(table, slot.start)
        if slot.point.type in ("string", "bool"):
            return raw
        return raw * slot.point.scale + slot.point.offset  # type: ignore[operator]

    def set_value(self, name: str, value: Scalar) -> None:
        """Pin a point to a value (its generator stops), as if the process had changed."""
        slot = self.slots[name]
        slot.point.value = Constant(value)
        self._index_dynamic()
        self._store(slot, value)

    def _dynamic_names(self) -> set[str]:
        return {s.point.name for _, slots in self._dynamic.values() for s in slots}

    def _freeze(self, table: str, address: int, count: int) -> None:
        """A master wrote here: points it touched keep what was written (no generator)."""
        if table not in self._dynamic:
            return
        ends, slots = self._dynamic[table]
        i = bisect_right(ends, address)
        changed = False
        while i < len(slots) and slots[i].start < address + count:
            slots[i].point.value = Constant(0)
            changed = True
            i += 1
        if changed:
            self._index_dynamic()

    # -- reads ---------------------------------------------------------------------------

    def _check(self, table: str, address: int, count: int, rw: dict[str, bytearray]) -> bool:
        flags = rw[table]
        end = address + count
        return end <= len(flags) and flags.find(0, address, end) == -1

    def _read_bits(self, pdu: bytes, table: str, entry: functions.ReadBits) -> bytes:
        fc = pdu[0]
        try:
            address, count = entry.parse_request(pdu)
        except PduError as exc:
            return exception_pdu(fc, exc.code)
        if not self._check(table, address, count, self.readable):
            return exception_pdu(fc, ILLEGAL_ADDRESS)
        if table in self._dynamic:
            self._refresh(table, address, count)
        # The table holds ASCII '0'/'1' per address: packing is one int() (see UnitState).
        bits = self.tables[table][address : address + count]
        nbytes = (count + 7) // 8
        return bytes((fc, nbytes)) + int(bits[::-1], 2).to_bytes(nbytes, "little")

    def _read_registers(self, pdu: bytes, table: str, entry: functions.ReadRegisters) -> bytes:
        try:
            address, count = entry.parse_request(pdu)
        except PduError as exc:
            return exception_pdu(pdu[0], exc.code)
        if not self._check(table, address, count, self.readable):
            return exception_pdu(pdu[0], ILLEGAL_ADDRESS)
        if table in self._dynamic:
            self._refresh(table, address, count)
        return entry.response(self.tables[table][2 * address : 2 * (address + count)])

    def _read_coils(self, pdu: bytes) -> bytes:
        return self._read_bits(pdu, "coil", functions.READ_COILS)

    def _read_discrete(self, pdu: bytes) -> bytes:
        return self._read_bits(pdu, "discrete", functions.READ_DISCRETE_INPUTS)

    def _read_holding(self, pdu: bytes) -> bytes:
        return self._read_registers(pdu, "holding", functions.READ_HOLDING_REGISTERS)

    def _read_input(self, pdu: bytes) -> bytes:
        return self._read_registers(pdu, "input", functions.READ_INPUT_REGISTERS)

    # -- writes --------------------------------------------------------------------------

    def _write_coil(self, pdu: bytes) -> bytes:
        try:
            address, value = functions.WRITE_SINGLE_COIL.parse_request(pdu)
        except PduError as exc:
            return exception_pdu(5, exc.code)
        if not self._check("coil", address, 1, self.writable):
            return exception_pdu(5, ILLEGAL_ADDRESS)
        self._freeze("coil", address, 1)
        self.tables["coil"][address] = _BIT_1 if value else _BIT_0
        return pdu

    def _write_register(self, pdu: bytes) -> bytes:
        try:
            address, _value = functions.WRITE_SINGLE_REGISTER.parse_request(pdu)
        except PduError as exc:
            return exception_pdu(6, exc.code)
        if not self._check("holding", address, 1, self.writable):
            return exception_pdu(6, ILLEGAL_ADDRESS)
        self._freeze("holding", address, 1)
        self.tables["holding"][2 * address : 2 * address + 2] = pdu[3:5]
        return pdu

    def _write_coils(self, pdu: bytes) -> bytes:
        entry = functions.WRITE_MULTIPLE_COILS
        try:
            address, bits = entry.parse_request(pdu)
        except PduError as exc:
            return exception_pdu(15, exc.code)
        count = len(bits)
        if not self._check("coil", address, count, self.writable):
            return exception_pdu(15, ILLEGAL_ADDRESS)
        self._freeze("coil", address, count)
        self.tables["coil"][address : address + count] = bytes(
            _BIT_1 if bit else _BIT_0 for bit in bits
        )
        return entry.response(address, count)

    def _write_registers(self, pdu: bytes) -> bytes:
        entry = functions.WRITE_MULTIPLE_REGISTERS
        try:
            address, registers = entry.parse_request(pdu)
        except PduError as exc:
            return exception_pdu(16, exc.code)
        count = len(registers)
        if not self._check("holding", address, count, self.writable):
            return exception_pdu(16, ILLEGAL_ADDRESS)
        self._freeze("holding", address, count)
        self.tables["holding"][2 * address : 2 * (address + count)] = pdu[6:]
        return entry.response(address, count)

    def _mask_write_register(self, pdu: bytes) -> bytes:
        entry = functions.MASK_WRITE_REGISTER
        try:
            address, and_mask, or_mask = entry.parse_request(pdu)
        except PduError as exc:
            return exception_pdu(0x16, exc.code)
        # A read-modify-write: the register must be readable as well as writable.
        if not (
            self._check("holding", address, 1, self.writable)
            and self._check("holding", address, 1, self.readable)
        ):
            return exception_pdu(0x16, ILLEGAL_ADDRESS)
        if "holding" in self._dynamic:
            self._refresh("holding", address, 1)
        table = self.tables["holding"]
        current = int.from_bytes(table[2 * address : 2 * address + 2], "big")
        # Modbus spec 6.16: (current AND and_mask) OR (or_mask AND NOT and_mask).
        result = (current & and_mask) | (or_mask & ~and_mask & 0xFFFF)
        self._freeze("holding", address, 1)
        table[2 * address : 2 * address + 2] = result.to_bytes(2, "big")
        return entry.response(address, and_mask, or_mask)

    def _read_write_registers(self, pdu: bytes) -> bytes:
        entry = functions.READ_WRITE_REGISTERS
        try:
            read_address, read_count, write_address, registers = entry.parse_request(pdu)
        except PduError as exc:
            return exception_pdu(0x17, exc.code)
        count = len(registers)
        if not (
            self._check("holding", write_address, count, self.writable)
            and self._check("holding", read_address, read_count, self.readable)
        ):
            return exception_pdu(0x17, ILLEGAL_ADDRESS)
        # The write happens before the read (spec 6.17), so a read of the written range
        # returns the new values.
        self._freeze("holding", write_address, count)
        self.tables["holding"][2 * write_address : 2 * (write_address + count)] = pdu[10:]
        if "holding" in self._dynamic:
            self._refresh("holding", read_address, read_count)
        data = self.tables["holding"][2 * read_address : 2 * (read_address + read_count)]
        return bytes((0x17, len(data))) + bytes(data)

    # -- identification ------------------------------------------------------------------

    def _report_server_id(self, pdu: bytes) -> bytes:
        entry = functions.REPORT_SERVER_ID
        try:
            entry.parse_request(pdu)
        except PduError as exc:
            return exception_pdu(0x11, exc.code)
        sid = self.server_id
        if sid is None:
            return exception_pdu(0x11, ILLEGAL_FUNCTION)
        body = sid.id + (b"\xff" if sid.running else b"\x00") + sid.additional
        return entry.response(body[: MAX_PDU - 2])

    def _encapsulated(self, pdu: bytes) -> bytes:
        try:
            read_code, object_id = functions.READ_DEVICE_IDENTIFICATION.parse_request(pdu)
        except PduError as exc:
            return exception_pdu(0x2B, exc.code)
        if self.identity is None:
            return exception_pdu(0x2B, ILLEGAL_FUNCTION)
        return self.read_device_identification(read_code, object_id)

    def read_device_identification(self, read_code: int, object_id: int) -> bytes:
        """MEI 0x0E: stream access (codes 1-3, split with "more follows") or one object (4)."""
        objs = self.identity or {}
        has_extended = any(k >= 0x80 for k in objs)
        has_regular = any(3 <= k < 0x80 for k in objs)
        # Conformity: highest category supported, +0x80 because single objects can be read.
        conformity = 0x80 | (0x03 if has_extended else 0x02 if has_regular else 0x01)
        if read_code == DeviceInformation.SPECIFIC:
            if object_id not in objs:
                return exception_pdu(0x2B, ILLEGAL_ADDRESS)
            value = objs[object_id][: MAX_PDU - _MEI_HEADER - 2]
            return functions.READ_DEVICE_IDENTIFICATION.response(
                4, conformity, [(object_id, value)]
            )
        limits = {
            DeviceInformation.BASIC: (0x00, 0x02),
            DeviceInformation.REGULAR: (0x00, 0x7F),
            DeviceInformation.EXTENDED: (0x00, 0xFF),
        }
        if read_code not in limits:
            return exception_pdu(0x2B, ILLEGAL_VALUE)
        first, last = limits[read_code]
        ids = [k for k in sorted(objs) if first <= k <= last]
        # An object id outside the category restarts the stream at its beginning (spec 6.21).
        if object_id not in ids:
            object_id = first
        ids = [k for k in ids if k >= object_id]
        objects: list[tuple[int, bytes]] = []
        used = 0
        more, next_id = False, 0x00
        room = MAX_PDU - _MEI_HEADER
        for k in ids:
            value = objs[k][: room - 2]
            if used + 2 + len(value) > room:
                more, next_id = True, k
                break
            objects.append((k, value))
            used += 2 + len(value)
        return functions.READ_DEVICE_IDENTIFICATION.response(
            read_code, conformity, objects, more_follows=more, next_object_id=next_id
        )


class DeviceState:
    """One listener's units, and the rule for unit ids it does not have."""

    def __init__(self, profile: DeviceProfile, clock: Callable[[], float]) -> None:
        # A private copy: generators keep state and writes pin points, and one profile
        # object may back several devices (``--devices N``) or several tests.
        profile = copy.deepcopy(profile)
        self.profile = profile
        self.clock = clock
        self.started = clock()
        self.units = {u.id: UnitState(u, self.now) for u in profile.all_units()}
        self.any_unit: UnitState | None = (
            next(iter(self.units.values())) if profile.answer_all_units else None
        )
        self.absent = profile.absent_unit

    def now(self) -> float:
        """Seconds since the device started, on the simulator's clock."""
        return self.clock() - self.started

    def unit(self, unit_id: int) -> UnitState | None:
        return self.units.get(unit_id) or self.any_unit

    def handle(self, unit_id: int, pdu: bytes) -> bytes | None:
        """The response PDU for a request PDU, or None when the device stays silent."""
        unit = self.units.get(unit_id) or self.any_unit
        if unit is None:
            return None if self.absent is None else exception_pdu(pdu[0], self.absent)
        handler = unit.handlers.get(pdu[0])
        if handler is None:
            return exception_pdu(pdu[0], ILLEGAL_FUNCTION)
        return handler(pdu)
