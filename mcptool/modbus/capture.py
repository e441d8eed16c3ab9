"""A live device turned into a simulator profile that serves the same values.

``discover`` finds which addresses of a range answer: it reads whole blocks (125
registers or 2000 bits) and splits a block the device refuses (illegal data address)
in halves until it knows each address, so a dense map costs one read per block and an
address the device lacks is left unmapped, as on the device. ``sample`` reads the
found addresses again for a recorded series. ``profile_toml`` writes the profile: one
``uint16`` point per register (or one bit), a constant, or a ``sequence`` when the value
changed while recording; device identification objects become its ``[identity]``.
Registers are copied raw, so every data type and word order comes back as it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from mcptool.errors import UsageError
from mcptool.modbus.client import DeviceError, Link, read_block
from mcptool.modbus.functions import ExceptionCode
from mcptool.modbus.registermap import MAX_READ_BITS, MAX_READ_REGISTERS, TABLE_ALIASES, Table

__all__ = [
    "Capture",
    "TableRange",
    "discover",
    "parse_range",
    "parse_server_id",
    "profile_toml",
    "sample",
]

Raw = int | bool


@dataclass(frozen=True, slots=True)
class TableRange:
    """Addresses ``first`` to ``last`` (0-based, inclusive) of ``table``."""

    table: Table
    first: int
    last: int


def parse_range(text: str) -> TableRange:
    """``holding:0-199`` (0-based wire addresses) as a ``TableRange``."""
    shown = text if len(text) <= 40 else text[:37] + "..."
    table_text, sep, span = text.partition(":")
    table = TABLE_ALIASES.get(table_text.strip().lower())
    first_text, dash, last_text = span.partition("-")
    if not sep or table is None or not first_text.strip().isdigit():
        raise UsageError(
            f"range {shown!r}: write TABLE:FIRST-LAST with 0-based addresses, "
            "e.g. holding:0-199 (tables: coil, discrete, input, holding)"
        )
    first = int(first_text)
    last = int(last_text) if dash and last_text.strip().isdigit() else first
    if dash and not last_text.strip().isdigit():
        raise UsageError(f"range {shown!r}: {last_text[:20]!r} is not an address")
    if not 0 <= first <= last <= 0xFFFF:
        raise UsageError(f"range {shown!r}: addresses run 0-65535, first <= last")
    return TableRange(Table(table), first, last)


@dataclass(slots=True)
class Capture:
    """What was read: per table, per address, the values in the order they were read."""

    unit: int
    series: dict[Table, dict[int, list[Raw]]] = field(default_factory=dict)
    identity: dict[str, str] = field(default_factory=dict)
    #: Report Server ID (0x11): the id byte, the run indicator, the additional text.
    server_id: tuple[int, bool, str] | None = None
    interval: float = 1.0

    def add(self, table: Table, address: int, value: Raw) -> None:
        self.series.setdefault(table, {}).setdefault(address, []).append(value)

    @property
    def found(self) -> int:
        return sum(len(addresses) for addresses in self.series.values())


async def discover(
    connection: Link,
    unit: int,
    span: TableRange,
    capture: Capture,
    *,
    timeout: float,
) -> None:
    """Read ``span``; record every address that answers. ``DeviceError`` if the device fails."""
    limit = MAX_READ_BITS if span.table.is_bits else MAX_READ_REGISTERS
    pending = [
        (start, min(span.last, start + limit - 1))
        for start in range(span.first, span.last + 1, limit)
    ]
    pending.reverse()
    while pending:
        first, last = pending.pop()
        block = await read_block(
            connection, unit, span.table, first, last - first + 1, timeout=timeout
        )
        if block.values is not None:
            for offset, value in enumerate(block.values):
                capture.add(span.table, first + offset, value)
        elif block.exception_code in (ExceptionCode.ILLEGAL_ADDRESS, ExceptionCode.ILLEGAL_VALUE):
            if first < last:  # somewhere in here an address is missing: look closer
                middle = (first + last) // 2
                pending += [(middle + 1, last), (first, middle)]
        elif block.exception_code == ExceptionCode.ILLEGAL_FUNCTION:
            return  # the device has no such table
        else:
            raise DeviceError(
                f"unit {unit}, {span.table.value} {first}-{last}: {block.error}: "
                "nothing was captured"
            )


def _runs(addresses: Iterable[int], limit: int) -> list[tuple[int, int]]:
    """Contiguous runs of ``addresses`` as (first, count), each at most ``limit`` long."""
    runs: list[tuple[int, int]] = []
    for address in sorted(addresses):
        if runs and runs[-1][0] + runs[-1][1] == address and runs[-1][1] < limit:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((address, 1))
    return runs


async def sample(connection: Link, unit: int, capture: Capture, *, timeout: float) -> None:
    """Read every found address once more and append the values to its series."""
    for table, addresses in capture.series.items():
        limit = MAX_READ_BITS if table.is_bits else MAX_READ_REGISTERS
        for first, count in _runs(addresses, limit):
            block = await read_block(connection, unit, table, first, count, timeout=timeout)
            if block.values is None:
                raise DeviceError(
                    f"unit {unit}, {table.value} {first}-{first + count - 1} stopped "
                    f"answering while recording: {block.error}"
                )
            for offset, value in enumerate(block.values):
                capture.add(table, first + offset, value)


def parse_server_id(text: str | None, running: bool | None) -> tuple[int, bool, str] | None:
    """``identify``'s server id text (``0x42 BX-200``) as (id, running, additional)."""
    if not text or running is None:
        return None
    head, _, additional = text.partition(" ")
    try:
        sid = int(head, 16)
    except ValueError:
        return None
    return (sid, running, additional) if 0 <= sid <= 0xFF else None


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped) + '"'


def _toml_value(values: list[Raw], interval: float) -> str:
    def one(v: Raw) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else str(v)

    if all(v == values[0] for v in values):
        return one(values[0])
    listed = ", ".join(one(v) for v in values)
    shown = f"{interval:g}" if math.isfinite(interval) else "1"
    return f'{{ kind = "sequence", values = [{listed}], interval = {shown} }}'


def profile_toml(capture: Capture, name: str, source: str) -> str:
    """The simulator profile (simulators/modbus/profiles format) that replays ``capture``."""
    lines = [
        f"# Captured by `mcptool capture` from {source}, unit {capture.unit}:",
        f"# {capture.found} addresses, raw registers (any type and word order reads back as",
        "# it was). Serve it with `mcptool simulate modbus --profile THIS_FILE`.",
        f"name = {_toml_string(name)}",
        f"unit = {capture.unit}",
        "",
    ]
    if capture.identity:
        lines.append("[identity]")
        lines += [f"{key} = {_toml_string(value)}" for key, value in capture.identity.items()]
        lines.append("")
    if capture.server_id is not None:
        sid, running, additional = capture.server_id
        lines += [
            "[server_id]",
            f"id = {sid:#04x}",
            f"running = {'true' if running else 'false'}",
            f"additional = {_toml_string(additional)}",
            "",
        ]
    for table in Table:
        for address, values in sorted(capture.series.get(table, {}).items()):
            lines += [
                "[[points]]",
                f'name = "{table.value}_{address}"',
                f'table = "{table.value}"',
                f"address = {address}",
            ]
            if not table.is_bits:
                lines.append('type = "uint16"')
            lines += [f"value = {_toml_value(values, capture.interval)}", ""]
    return "\n".join(lines)
