"""Register data types: each type and byte order reads and writes the registers users expect."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from mcptool.modbus.datatypes import (
    ORDERS,
    DataTypeError,
    codec,
    decode,
    encode,
    normalize_order,
    register_count,
    swap_bytes,
)

DT = ModbusClientMixin.DATATYPE


@pytest.mark.parametrize(
    ("order", "registers"),
    [
        ("ABCD", [0x0102, 0x0304]),
        ("DCBA", [0x0403, 0x0201]),
        ("BADC", [0x0201, 0x0403]),
        ("CDAB", [0x0304, 0x0102]),
    ],
)
def test_32_bit_orders_place_bytes_as_telegraf_names_them(order: str, registers: list[int]) -> None:
    assert encode(0x01020304, "uint32", order) == registers
    assert decode(registers, "uint32", order) == 0x01020304


@pytest.mark.parametrize(
    ("order", "registers"),
    [
        ("ABCD", [0x0102, 0x0304, 0x0506, 0x0708]),
        ("DCBA", [0x0807, 0x0605, 0x0403, 0x0201]),
        ("BADC", [0x0201, 0x0403, 0x0605, 0x0807]),
        ("CDAB", [0x0708, 0x0506, 0x0304, 0x0102]),
    ],
)
def test_64_bit_orders_extend_the_32_bit_pattern(order: str, registers: list[int]) -> None:
    assert encode(0x0102030405060708, "uint64", order) == registers
    assert decode(registers, "uint64", order) == 0x0102030405060708


def test_16_bit_types_only_see_the_byte_swap() -> None:
    assert encode(0x0102, "uint16", "ABCD") == encode(0x0102, "uint16", "CDAB") == [0x0102]
    assert encode(0x0102, "uint16", "BADC") == encode(0x0102, "uint16", "DCBA") == [0x0201]
    assert decode([0xFFFE], "int16") == -2


def test_float32_known_value() -> None:
    assert encode(50.0, "float32") == [0x4248, 0x0000]
    assert decode([0x0000, 0x4248], "float32", "CDAB") == 50.0


@pytest.mark.parametrize(
    ("name", "datatype"),
    [
        ("int16", DT.INT16),
        ("uint16", DT.UINT16),
        ("int32", DT.INT32),
        ("uint32", DT.UINT32),
        ("int64", DT.INT64),
        ("uint64", DT.UINT64),
        ("float32", DT.FLOAT32),
        ("float64", DT.FLOAT64),
    ],
)
@pytest.mark.parametrize(("order", "word_order"), [("ABCD", "big"), ("CDAB", "little")])
def test_agrees_with_pymodbus_for_the_orders_pymodbus_knows(
    name: str, datatype: DT, order: str, word_order: str
) -> None:
    value = -123 if name.startswith("int") else 12345
    if name.startswith("float"):
        value = -1.5
    registers = ModbusClientMixin.convert_to_registers(value, datatype, word_order)  # type: ignore[arg-type]
    assert encode(value, name, order) == registers
    assert decode(registers, name, order) == value


_VALUES = {
    "int16": st.integers(-(2**15), 2**15 - 1),
    "uint16": st.integers(0, 2**16 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "uint32": st.integers(0, 2**32 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "float32": st.floats(width=32, allow_nan=False),
    "float64": st.floats(allow_nan=False),
    "bool": st.booleans(),
}


@given(data=st.data(), order=st.sampled_from(ORDERS), name=st.sampled_from(sorted(_VALUES)))
def test_every_type_and_order_round_trips(data: st.DataObject, order: str, name: str) -> None:
    value = data.draw(_VALUES[name])
    registers = encode(value, name, order)
    assert len(registers) == register_count(name)
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode(registers, name, order) == value


@given(
    order=st.sampled_from(ORDERS),
    name=st.sampled_from(["int32", "uint64", "float32", "float64", "int16"]),
    prefix=st.lists(st.integers(0, 0xFFFF), max_size=5),
)
def test_decoding_from_wire_bytes_matches_decoding_registers(
    order: str, name: str, prefix: list[int]
) -> None:
    c = codec(name, order)
    registers = c.encode(7)
    block = b"".join(r.to_bytes(2, "big") for r in [*prefix, *registers, 0xABCD])
    assert c.encode_bytes(7) == b"".join(r.to_bytes(2, "big") for r in registers)
    assert c.decode_bytes(block, len(prefix)) == 7
    assert c.decode_bytes(block, len(prefix), swapped=swap_bytes(block)) == 7


def test_strings_pack_two_characters_per_register_high_byte_first() -> None:
    assert encode("Hello", "string", length=4) == [0x4865, 0x6C6C, 0x6F00, 0x0000]
    assert decode([0x4865, 0x6C6C, 0x6F00, 0x0000], "string") == "Hello"
    assert encode("Hi", "string", "BADC") == [0x6948]
    assert decode([0x6948], "string", "BADC") == "Hi"


def test_bool_in_a_register_is_non_zero() -> None:
    assert decode([0x0100], "bool") is True
    assert decode([0], "bool") is False
    assert encode(True, "bool") == [1]


def test_order_spellings_of_other_tools_are_accepted() -> None:
    assert normalize_order("cdab") == "CDAB"
    assert normalize_order("GHEFCDAB") == "CDAB"
    assert normalize_order("BA") == "BADC"


def test_unknown_type_names_the_type_and_the_choices() -> None:
    with pytest.raises(DataTypeError, match=r'unknown type "flaot32".*float32'):
        encode(1.0, "flaot32")


def test_unknown_order_is_refused() -> None:
    with pytest.raises(DataTypeError, match='unknown byte order "ACBD"'):
        codec("int32", "ACBD")


@pytest.mark.parametrize(("value", "name"), [(70000, "int16"), (-1, "uint32"), (1.5, "int32")])
def test_values_that_do_not_fit_are_refused(value: float, name: str) -> None:
    with pytest.raises(DataTypeError, match=name):
        encode(value, name)


def test_wrong_register_count_is_refused() -> None:
    with pytest.raises(DataTypeError, match="float32 needs 2 registers"):
        decode([1], "float32")


def test_string_too_long_for_its_registers_is_refused() -> None:
    with pytest.raises(DataTypeError, match="does not fit 1 registers"):
        encode("abc", "string", length=1)


def test_nan_survives_float_round_trip() -> None:
    assert math.isnan(decode(encode(math.nan, "float32", "CDAB"), "float32", "CDAB"))  # type: ignore[arg-type]
