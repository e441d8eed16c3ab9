"""Addresses as users write them: Modicon numbers, TABLE:N, plain numbers, --base."""

from __future__ import annotations

import pytest

from mcptool.modbus.modicon import AddressError, modicon_hint, parse_address
from mcptool.modbus.registermap import Table


@pytest.mark.parametrize(
    ("text", "base", "table", "address"),
    [
        ("40001", 0, Table.HOLDING, 0),
        ("40001", 1, Table.HOLDING, 0),  # Modicon numbers always count from 1
        ("30010", 0, Table.INPUT, 9),
        ("10001", 0, Table.DISCRETE, 0),
        ("00001", 0, Table.COIL, 0),
        ("49999", 0, Table.HOLDING, 9998),
        ("465536", 0, Table.HOLDING, 65535),
        ("300001", 0, Table.INPUT, 0),
        ("100", 0, Table.HOLDING, 100),
        ("100", 1, Table.HOLDING, 99),
        ("hr:100", 0, Table.HOLDING, 100),
        ("holding:40001", 0, Table.HOLDING, 40001),
        ("input_registers:5", 1, Table.INPUT, 4),
        ("coil:7", 0, Table.COIL, 7),
        ("20001", 0, Table.HOLDING, 20001),  # 2 names no table: a plain number
    ],
)
def test_addresses_name_their_table_and_wire_address(
    text: str, base: int, table: Table, address: int
) -> None:
    parsed = parse_address(text, base)
    assert (parsed.table, parsed.address) == (table, address)


@pytest.mark.parametrize(
    ("text", "base", "reason"),
    [
        ("40000", 0, "a Modicon number counts 1-9999"),
        ("400000", 0, "a Modicon number counts 1-65536"),
        ("465537", 0, "a Modicon number counts 1-65536"),
        ("0", 1, "out of range with --base 1"),
        ("65536", 0, "out of range with --base 0"),
        ("tank:1", 0, "unknown table 'tank'"),
        ("-1", 0, "not a number"),
        ("", 0, "not a number"),
    ],
)
def test_addresses_that_name_no_register_say_which_forms_work(
    text: str, base: int, reason: str
) -> None:
    with pytest.raises(AddressError) as raised:
        parse_address(text, base)
    assert reason in str(raised.value)
    assert "40001" in str(raised.value)


def test_labels_keep_the_users_notation() -> None:
    assert parse_address("40009").label(2) == "40011"
    assert parse_address("400009").label(2) == "400011"
    assert parse_address("hr:8", 0).label(2) == "holding:10"


@pytest.mark.parametrize(
    ("function", "address", "hint"),
    [
        (3, 40001, "40001 looks like Modicon numbering (holding 0 on the wire): try -a 0"),
        (3, 30005, "30005 looks like Modicon numbering (input 4 on the wire): try -f 4 -a 4"),
        (3, 40000, None),
        (3, 100, None),
        (3, 20001, None),
    ],
)
def test_a_probe_address_that_looks_modicon_gets_a_hint(
    function: int, address: int, hint: str | None
) -> None:
    got = modicon_hint(function, address)
    assert got == hint if hint is None else (got or "").startswith(hint)
