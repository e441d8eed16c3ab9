"""Poll messages as the analysis reads them at a hub or a fleet worker."""

from __future__ import annotations

from mcptool.analysis.analyzer import PointInfo
from mcptool.analysis.polls import points_of

MESSAGE = {
    "device": "pump-3",
    "kind": "telemetry",
    "ts": 1_700_000_000_000,
    "readings": [
        {"point": "flow", "value": 12.5, "unit": "m³/h", "quality": "good"},
        {"point": "running", "value": True, "quality": "good"},
        {"point": "mode", "value": 2, "quality": "good"},
        {"point": "pressure", "value": None, "unit": "bar", "quality": "bad"},
    ],
}


def test_a_boolean_value_makes_its_point_discrete_and_units_come_along() -> None:
    assert points_of(MESSAGE) == [
        PointInfo("flow", "m³/h"),
        PointInfo("running", "", discrete=True),
        PointInfo("mode", ""),
        PointInfo("pressure", "bar"),
    ]


def test_a_message_without_readings_has_no_points() -> None:
    assert points_of({"device": "x", "kind": "telemetry"}) == []
