"""Plausibility: what gives a wrong word order away, and the order that fixes it."""

from __future__ import annotations

import math

import pytest

from mcptool.modbus.datatypes import encode
from mcptool.modbus.plausibility import judge, suggest_orders


@pytest.mark.parametrize(
    ("value", "type_", "unit", "why"),
    [
        (math.nan, "float32", "", "NaN"),
        (math.inf, "float32", "V", "infinite"),
        (1e-40, "float32", "", "a denormal float"),
        (1.65e-34, "float32", "V", "1.65e-34 is vanishingly small"),
        (3e20, "float32", "", "3e+20 is absurdly large"),
        (-300.0, "float32", "°C", "-300 °C is outside -273.15..3000 °C"),
        (5e6, "uint32", "V", "5e+06 V is outside -2e+06..2e+06 V"),
        (230.0, "float32", "V", None),
        (0.0, "float32", "V", None),
        (65535, "uint16", "", None),
        ("PM3K", "string", "", None),
        (True, "bool", "", None),
    ],
)
def test_implausible_values_are_named(value: float, type_: str, unit: str, why: str | None) -> None:
    assert judge(value, type_, unit) == why


@pytest.mark.parametrize("stored", ["ABCD", "CDAB", "BADC", "DCBA"])
def test_a_voltage_stored_in_one_order_and_read_in_another_gets_the_stored_order(
    stored: str,
) -> None:
    registers = tuple(encode(230.5, "float32", stored))
    wrong = "CDAB" if stored != "CDAB" else "ABCD"
    suggestions = suggest_orders(registers, "float32", wrong, unit="V")
    assert [s.order for s in suggestions][:1] == [stored]
    assert suggestions[0].value == pytest.approx(230.5)


def test_scale_and_offset_apply_before_judging() -> None:
    registers = tuple(encode(2305, "int32", "CDAB"))
    suggestions = suggest_orders(registers, "int32", "ABCD", unit="V", scale=0.1)
    # Integers decode to some number in every order: the word swap, the usual culprit,
    # comes first among those that fit the unit.
    assert (suggestions[0].order, suggestions[0].value) == ("CDAB", pytest.approx(230.5))


def test_single_registers_have_no_word_order_to_try() -> None:
    assert suggest_orders((0xFFFF,), "int16", "ABCD", unit="°C") == []
