"""Register maps: read planning merges neighbours within protocol limits; decoding agrees
with the shared data-type codecs for every type and byte order."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcptool.modbus.datatypes import encode
from mcptool.modbus.registermap import (
    ByteOrder,
    DataType,
    Point,
    Table,
    plan_reads,
)

NUMERIC = [t for t in DataType if t not in (DataType.BOOL, DataType.STRING)]


def holding(name: str, address: int, type: DataType = DataType.UINT16, **kw: object) -> Point:
    return Point(name, Table.HOLDING, address, type, **kw)  # type: ignore[arg-type]


def test_neighbouring_points_are_merged_into_one_read() -> None:
    points = [holding(f"p{i}", i * 2, DataType.FLOAT32) for i in range(10)]
    [read] = plan_reads(points)
    assert (read.function, read.address, read.count) == (3, 0, 20)
    assert read.points == tuple(points)


def test_a_read_never_exceeds_125_registers() -> None:
    points = [holding(f"p{i}", i * 2, DataType.FLOAT32) for i in range(100)]
    reads = plan_reads(points)
    assert [r.count for r in reads] == [124, 76]
    assert sum(len(r.points) for r in reads) == 100


def test_a_read_never_exceeds_2000_bits() -> None:
    points = [Point(f"c{i}", Table.COIL, i, DataType.BOOL) for i in range(2500)]
    reads = plan_reads(points)
    assert [(r.function, r.count) for r in reads] == [(1, 2000), (1, 500)]


def test_holes_up_to_the_gap_are_read_through_and_larger_ones_split() -> None:
    points = [holding("a", 0), holding("b", 11), holding("c", 30)]
    reads = plan_reads(points, max_gap=10)
    assert [(r.address, r.count) for r in reads] == [(0, 12), (30, 1)]
    assert len(plan_reads(points, max_gap=0)) == 3


def test_tables_are_never_mixed_in_one_read() -> None:
    points = [
        holding("h", 0),
        Point("i", Table.INPUT, 1, DataType.UINT16),
        Point("d", Table.DISCRETE, 2, DataType.BOOL),
    ]
    assert sorted(r.function for r in plan_reads(points)) == [2, 3, 4]


def test_split_halves_the_points_and_shrinks_each_read() -> None:
    [read] = plan_reads([holding(f"p{i}", i) for i in range(6)])
    first, second = read.split()
    assert (first.address, first.count, second.address, second.count) == (0, 3, 3, 3)


@given(
    type=st.sampled_from(NUMERIC),
    order=st.sampled_from(list(ByteOrder)),
    values=st.lists(st.integers(0, 100), min_size=1, max_size=20),
)
def test_decoding_a_run_matches_the_shared_codec(
    type: DataType, order: ByteOrder, values: list[int]
) -> None:
    points = []
    registers: list[int] = []
    for i, value in enumerate(values):
        words = encode(value, type.value, order.value)
        points.append(holding(f"p{i}", len(registers), type, order=order))
        registers.extend(words)
    [read] = plan_reads(points)
    data = struct.pack(f">{len(registers)}H", *registers)
    assert read.decode(data) == pytest.approx(values)


def test_scale_offset_and_decimals_apply_per_point() -> None:
    points = [
        holding("t", 0, DataType.INT16, scale=0.1, offset=-40.0, decimals=1),
        holding("u", 1, DataType.UINT16, scale=2.0),
    ]
    [read] = plan_reads(points)
    assert read.decode(struct.pack(">hH", 655, 21)) == [25.5, 42.0]


def test_bits_strings_and_register_bits_decode() -> None:
    coils = [Point(f"c{i}", Table.COIL, i, DataType.BOOL) for i in range(10)]
    [read] = plan_reads(coils)
    assert read.decode(bytes([0b0000_0101, 0b10])) == [
        True, False, True, False, False, False, False, False, False, True
    ]  # fmt: skip
    text = holding("s", 0, DataType.STRING, length=5)
    flag = holding("f", 3, DataType.BOOL, bit=2)
    [read] = plan_reads([text, flag])
    data = struct.pack(">3HH", *encode("hello", "string", "ABCD", 3), 0b100)
    assert read.decode(data) == ["hello", True]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"table": Table.COIL, "type": DataType.UINT16}, "holds bits"),
        ({"type": DataType.STRING}, "needs `length`"),
        ({"address": 65535, "type": DataType.FLOAT32}, "outside 0-65535"),
        ({"type": DataType.UINT16, "bit": 3}, "`bit`"),
    ],
)
def test_impossible_points_are_refused(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"name": "x", "table": Table.HOLDING, "address": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        Point(**fields)  # type: ignore[arg-type]
