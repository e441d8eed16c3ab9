"""The telemetry message is valid JSON with every field of every reading, good or bad."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from mcptool.gateway.encoding import PollEncoder
from mcptool.modbus.poller import PollResult
from mcptool.modbus.registermap import DataType, Point, Table

POINTS = (
    Point("temp", Table.HOLDING, 0, DataType.FLOAT32, unit="°C"),
    Point("count", Table.HOLDING, 2, DataType.UINT32),
    Point("name", Table.HOLDING, 4, DataType.STRING, length=8),
    Point("on", Table.COIL, 0, DataType.BOOL),
    Point("level", Table.HOLDING, 8, DataType.INT16, scale=0.1),
)


def test_a_poll_becomes_one_message_with_numbered_readings() -> None:
    encoder = PollEncoder("edge-1", 'boiler "A"', POINTS)
    result = PollResult(
        'boiler "A"',
        1764061200.1234,
        POINTS,
        [21.5, 7, 'he said "hi"', True, None],
        {4: "exception 0x02 illegal data address"},
    )
    message = json.loads(encoder.encode(result, 41))
    assert message["node"] == "edge-1"
    assert (message["device"], message["seq"], message["ts"]) == ('boiler "A"', 41, 1764061200123)
    readings = message["readings"]
    assert [r["seq"] for r in readings] == [41, 42, 43, 44, 45]
    assert readings[0] == {
        "device": 'boiler "A"',
        "point": "temp",
        "seq": 41,
        "ts": 1764061200123,
        "value": 21.5,
        "quality": "good",
        "unit": "°C",
    }
    assert [r["value"] for r in readings[:4]] == [21.5, 7, 'he said "hi"', True]
    assert readings[4]["quality"] == "bad"
    assert readings[4]["value"] is None
    assert readings[4]["error"] == "exception 0x02 illegal data address"


def test_non_finite_floats_become_bad_readings() -> None:
    point = Point("x", Table.HOLDING, 0, DataType.FLOAT32)
    encoder = PollEncoder("n", "d", (point, point))
    result = PollResult("d", 0.0, (point, point), [float("nan"), float("inf")])
    readings = json.loads(encoder.encode(result, 1))["readings"]
    assert [r["quality"] for r in readings] == ["bad", "bad"]
    assert "not a finite number" in readings[0]["error"]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1))
def test_floats_round_trip_exactly(values: list[float]) -> None:
    points = tuple(
        Point(f"p{i}", Table.HOLDING, i * 2, DataType.FLOAT32) for i in range(len(values))
    )
    encoder = PollEncoder("n", "d", points)
    readings = json.loads(encoder.encode(PollResult("d", 0.0, points, list(values)), 1))["readings"]
    assert [r["value"] for r in readings] == values


def test_a_traced_poll_carries_its_traceparent_after_ts_and_nowhere_else() -> None:
    traceparent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    floats = tuple(Point(f"p{i}", Table.HOLDING, i * 2, DataType.FLOAT32) for i in range(3))
    # the all-floats path and the general one
    for points, values in ((floats, [1.5, 2.5, 3.5]), (POINTS, [21.5, 7, "x", True, 1.0])):
        encoder = PollEncoder("edge-1", "boiler", points)
        result = PollResult("boiler", 1764061200.1234, points, values)  # type: ignore[arg-type]
        plain = encoder.encode(result, 1)
        traced = encoder.encode(result, 1, traceparent)
        assert traced == plain.replace(
            b',"readings"', b',"traceparent":"' + traceparent.encode() + b'","readings"', 1
        )
        message = json.loads(traced)
        assert message["traceparent"] == traceparent
        assert all("traceparent" not in reading for reading in message["readings"])
