"""The current values: the latest reading of every point, per device, with its quality,
timestamp and sequence number, read in-process (what a context server will serve)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mcptool.gateway import CurrentValue, CurrentValues, Gateway, parse_config
from mcptool.modbus.poller import DeviceSpec, PollResult
from mcptool.modbus.registermap import DataType, Point, Table
from simulators.modbus import ModbusSimulator
from tests.gateway.conftest import gateway_config, until

POINTS = (
    Point("temperature", Table.HOLDING, 0, DataType.FLOAT32, unit="°C"),
    Point("pressure", Table.HOLDING, 2, DataType.FLOAT32, unit="bar"),
    Point("running", Table.COIL, 0, DataType.BOOL),
)
BOILER = DeviceSpec(name="boiler", host="127.0.0.1", points=POINTS)
PUMP = DeviceSpec(name="pump", host="127.0.0.1", points=POINTS[:1])


def test_nothing_is_current_before_the_first_poll() -> None:
    current = CurrentValues([BOILER, PUMP])
    assert current.devices() == ["boiler", "pump"]
    assert current.points("boiler") == ["temperature", "pressure", "running"]
    assert current.get("boiler", "temperature") is None
    assert current.device("boiler") == []
    assert list(current) == []


def test_the_latest_poll_gives_value_quality_timestamp_and_sequence_number() -> None:
    current = CurrentValues([BOILER, PUMP])
    current.update(PollResult("boiler", 100.0, POINTS, [20.5, 1.2, True]), seq_first=1)
    current.update(
        PollResult("boiler", 101.0, POINTS, [21.0, None, True], {1: "exception 0x02"}),
        seq_first=4,
    )
    assert current.get("boiler", "temperature") == CurrentValue(
        "boiler", "temperature", 21.0, "good", 101.0, 4, unit="°C"
    )
    pressure = current.get("boiler", "pressure")
    assert pressure is not None
    assert (pressure.value, pressure.quality, pressure.error, pressure.seq) == (
        None,
        "bad",
        "exception 0x02",
        5,
    )
    assert [v.point for v in current.device("boiler")] == ["temperature", "pressure", "running"]
    assert current.get("pump", "temperature") is None  # another device: not polled yet
    assert [v.as_dict()["quality"] for v in current] == ["good", "bad", "good"]


def test_a_number_that_is_not_finite_is_bad_as_in_the_telemetry() -> None:
    current = CurrentValues([PUMP])
    current.update(PollResult("pump", 1.0, POINTS[:1], [math.nan]), seq_first=1)
    value = current.get("pump", "temperature")
    assert value is not None and value.quality == "bad" and value.value is None
    assert value.error == "not a finite number (nan)"


def test_unknown_devices_and_points_are_key_errors() -> None:
    current = CurrentValues([BOILER])
    with pytest.raises(KeyError):
        current.get("boiler", "flow")
    with pytest.raises(KeyError):
        current.device("chiller")


async def test_the_gateway_keeps_what_it_spools_as_the_current_values(
    devices: ModbusSimulator, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    config = parse_config(
        gateway_config(devices, tmp_path, mqtt_port=None, jsonl={"path": str(out)})
    )
    async with Gateway(config) as gw:
        await until(lambda: all(gw.current.device(d) for d in ("d0", "d1", "d2")))
        await gw.wait_delivered()
        latest = {(v.device, v.point): v for v in gw.current}
        assert len(latest) == 30
        d0 = gw.current.get("d0", "p9")
        assert d0 is not None and d0.quality == "good" and isinstance(d0.value, float)
    # every current value is the reading with the same sequence number in the telemetry
    readings = {
        (r["device"], r["seq"]): r
        for line in out.read_text().splitlines()
        for r in json.loads(line)["readings"]
    }
    for value in latest.values():
        reading = readings[value.device, value.seq]
        assert reading["point"] == value.point
        assert reading["value"] == value.value and reading["ts"] == round(value.ts * 1000)
