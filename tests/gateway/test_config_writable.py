"""Point descriptions and write permissions in the config: `writable = true` needs a table
that can be written and, for a number, both bounds; every problem has its exact path."""

from __future__ import annotations

from typing import Any

import pytest

from mcptool.gateway import ConfigError, parse_config
from mcptool.gateway.config import PointInfo


def config(*points: dict[str, Any], template: dict[str, Any] | None = None) -> dict[str, Any]:
    device: dict[str, Any] = {"name": "boiler", "host": "127.0.0.1", "points": list(points)}
    data: dict[str, Any] = {"jsonl": {"path": "-"}, "devices": [device]}
    if template is not None:
        data["templates"] = {"t": {"points": [template]}}
        device["template"] = "t"
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return [str(p) for p in caught.value.problems]


def test_descriptions_and_permissions_are_kept_per_device_and_point() -> None:
    parsed = parse_config(
        config(
            {"name": "t", "address": 0, "type": "float32", "description": "supply water"},
            {"name": "sp", "address": 2, "type": "float32", "writable": True, "min": 40,
             "max": 80},
            {"name": "pump", "table": "coil", "address": 0, "writable": True},
            {"name": "p", "address": 4},
            template={"name": "mode", "address": 9, "writable": True, "min": 0, "max": 3},
        )
    )  # fmt: skip
    assert parsed.info("boiler", "t") == PointInfo("supply water")
    assert parsed.info("boiler", "sp") == PointInfo("", True, 40.0, 80.0)
    assert parsed.info("boiler", "pump") == PointInfo("", True)
    assert parsed.info("boiler", "mode") == PointInfo("", True, 0.0, 3.0)
    assert parsed.info("boiler", "p") == PointInfo()  # not writable, whatever a client asks


def test_each_unsafe_permission_is_a_problem_with_its_path() -> None:
    found = problems(
        config(
            {"name": "a", "address": 0, "type": "float32", "writable": True},
            {"name": "b", "address": 2, "type": "float32", "writable": True, "min": 1},
            {"name": "c", "table": "input", "address": 0, "writable": True, "min": 0, "max": 1},
            {"name": "d", "address": 4, "writable": True, "min": 5, "max": 1},
            {"name": "e", "address": 5, "min": 0, "max": 1},
            {"name": "f", "address": 6, "type": "string", "length": 4, "writable": True},
        )
    )
    assert found == [
        "devices[0].points[0].min: a writable point needs bounds: add min and max",
        "devices[0].points[1].max: a writable point needs bounds: add min and max",
        "devices[0].points[2].writable: a point in the input table cannot be written"
        " (only holding registers and coils)",
        "devices[0].points[3].max: should be at least min (5.0), got 1.0",
        "devices[0].points[4].writable: min and max bound writes: add writable = true",
        "devices[0].points[5].writable: a string point cannot be written",
    ]


def test_bounds_are_finite_numbers() -> None:
    point = {"name": "g", "address": 9, "writable": True, "min": 0, "max": float("nan")}
    assert problems(config(point)) == [
        "devices[0].points[0].max: should be a finite number, got nan"
    ]
