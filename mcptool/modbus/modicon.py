"""Register addresses as users write them: Modicon numbers, table prefixes, 0- or 1-based.

A commissioning engineer reads addresses off a vendor's register list, and lists use
one of three habits:

- **Modicon** numbers: the first digit names the table and the rest counts from 1:
  ``00001`` coil 0, ``10001`` discrete input 0, ``30001`` input register 0, ``40001``
  holding register 0; six-digit forms (``400001``-``465536``) reach all 65536 addresses.
  A five- or six-digit number whose first digit is 0, 1, 3 or 4 is read this way.
- A table and a number: ``holding:100``, ``hr:100``, ``coil:7``, ``input:0`` (the
  table names the gateway config accepts), counted from ``--base`` (0 unless told).
- A plain number: a holding register, counted from ``--base``, as mbpoll's ``-r``.

To mean the holding register numbered 40001 itself, write ``holding:40001``. The
parsed address keeps what the user typed, so output shows the user's own notation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mcptool.errors import UsageError
from mcptool.modbus.registermap import TABLE_ALIASES, Table

__all__ = ["Address", "AddressError", "modicon_hint", "parse_address"]

_MODICON_TABLES: Final[dict[str, Table]] = {
    "0": Table.COIL,
    "1": Table.DISCRETE,
    "3": Table.INPUT,
    "4": Table.HOLDING,
}
_MODICON_DIGITS: Final[dict[Table, str]] = {t: d for d, t in _MODICON_TABLES.items()}
# The gateway config's table names, and the two-letter ones of vendor lists and pymodbus.
_TABLES: Final[dict[str, str]] = {
    **TABLE_ALIASES,
    "hr": "holding",
    "ir": "input",
    "co": "coil",
    "di": "discrete",
}


class AddressError(UsageError):
    """An address that names no register; the message says which forms are accepted."""


@dataclass(frozen=True, slots=True)
class Address:
    """A register or bit address: its table, its 0-based wire address, how it was written."""

    table: Table
    address: int
    #: The user's notation, kept for output ("40001", "hr:100").
    text: str = ""
    modicon: bool = False

    def label(self, offset: int = 0) -> str:
        """The address ``offset`` registers further on, in the notation the user used."""
        address = self.address + offset
        if self.modicon:
            digits = 6 if len(self.text) == 6 or address >= 9999 else 5
            return f"{_MODICON_DIGITS[self.table]}{address + 1:0{digits - 1}d}"
        return f"{self.table.value}:{address}"


def _range_error(text: str, why: str) -> AddressError:
    shown = text if len(text) <= 40 else text[:37] + "..."
    return AddressError(
        f"address {shown!r}: {why}; use a Modicon number (40001, 30001, 10001, 00001 or "
        "400001), TABLE:N (holding:0, input:0, coil:0, discrete:0) or a holding register N"
    )


def parse_address(text: str, base: int = 0) -> Address:
    """The address ``text`` names; ``base`` (0 or 1) counts plain and TABLE:N numbers."""
    if base not in (0, 1):
        raise UsageError(f"base {base} is not 0 or 1: addresses count from 0 or from 1")
    raw = text.strip()
    table_text, sep, number = raw.rpartition(":")
    if sep:
        table_name = _TABLES.get(table_text.strip().lower())
        if table_name is None:
            names = ", ".join(t.value for t in Table)
            raise _range_error(text, f"unknown table {table_text[:20]!r} (one of: {names})")
        return Address(Table(table_name), _number(text, number.strip(), base), raw)
    if not raw.isdigit():
        raise _range_error(text, "not a number")
    if len(raw) in (5, 6) and raw[0] in _MODICON_TABLES:
        index = int(raw[1:])
        limit = 9999 if len(raw) == 5 else 65536
        if not 1 <= index <= limit:
            raise _range_error(text, f"a Modicon number counts 1-{limit} after the table digit")
        return Address(_MODICON_TABLES[raw[0]], index - 1, raw, modicon=True)
    return Address(Table.HOLDING, _number(text, raw, base), raw)


def _number(text: str, number: str, base: int) -> int:
    if not number.isdigit():
        raise _range_error(text, "not a number")
    address = int(number) - base
    if not 0 <= address <= 0xFFFF:
        raise _range_error(text, f"out of range with --base {base} (0-65535 on the wire)")
    return address


def modicon_hint(function: int, address: int) -> str | None:
    """Why an address may have drawn "illegal data address": it looks like a Modicon number.

    ``probe -a 40001`` sends wire address 40001; the user most likely meant holding
    register 0. None when the address does not look like one.
    """
    digits = str(address)
    if len(digits) != 5 or digits[0] not in _MODICON_TABLES or digits[1:] == "0000":
        return None
    table = _MODICON_TABLES[digits[0]]
    wire = int(digits[1:]) - 1
    hint = f"{address} looks like Modicon numbering ({table.value} {wire} on the wire)"
    if table.function != function:
        return f"{hint}: try -f {table.function} -a {wire}, or `mcptool read TARGET {address}`"
    return f"{hint}: try -a {wire}, or `mcptool read TARGET {address}`"
