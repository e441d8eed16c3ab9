"""The analyze request's window: what is accepted, how every problem is named, and the
span the window covers (the request over a link is tests/edge/test_analyze.py)."""

from __future__ import annotations

from typing import Any

import pytest

from mcptool.analysis.analyze import MAX_READINGS, parse_window

T0 = 1_700_000_000.0


def readings(n: int, **values: Any) -> list[dict[str, Any]]:
    return [{"time": T0 + 2.0 * i, "values": values or {"t": 20.0}} for i in range(n)]


def test_a_window_runs_one_reading_interval_past_its_last_reading() -> None:
    window, problems = parse_window({"device": "d", "readings": readings(5)})
    assert problems == [] and window is not None
    assert (window.start, window.end) == (T0, T0 + 10.0)
    single, _ = parse_window({"device": "d", "readings": readings(1)})
    assert single is not None and single.end == T0 + 1.0


def test_points_give_units_thresholds_and_bits_are_discrete() -> None:
    window, _ = parse_window(
        {
            "device": "pump",
            "points": [{"name": "t", "unit": "°C", "above": 80, "severity": "critical"}],
            "readings": [{"time": T0, "values": {"t": 70}}],
        }
    )
    assert window is not None
    [rule] = window.thresholds()
    assert (rule.point, rule.above, rule.severity) == ("t", 80.0, "critical")
    assert rule.matches("pump", "t") and not rule.matches("pump", "t2")
    odd, _ = parse_window(
        {
            "device": "d",
            "points": [{"name": "t[1]", "above": 1}],
            "readings": readings(1, **{"t[1]": 2}),
        }
    )
    assert odd is not None and odd.thresholds()[0].matches("d", "t[1]")
    bits, _ = parse_window({"device": "d", "readings": [{"time": T0, "values": {"on": True}}]})
    assert bits is not None and [(i.name, i.discrete) for i in bits.infos()] == [("on", True)]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"device": "d", "readings": readings(1), "points": [{"name": "t"}, {"name": "t"}]},
            "data.points: point t is given twice",
        ),
        (
            {"device": "d", "readings": readings(MAX_READINGS + 1)},
            f"data.readings: should hold 1 to {MAX_READINGS} readings, got {MAX_READINGS + 1}",
        ),
        (
            {"device": "d", "readings": [{"time": T0, "values": {}}]},
            "data.readings[0].values: should hold 1 to 64 values, got 0",
        ),
        (
            {"device": "d" * 5000, "readings": readings(1)},
            "data.device: "
            + ("should have at most 128 characters, got '" + "d" * 200)[:197]
            + "...",
        ),
        (
            {"device": "d", "readings": readings(1), "unit": "°C"},
            "data.unit: unknown setting (check its spelling)",
        ),
        (
            {"device": "d", "readings": [{"time": T0, "values": {"t": [1, 2]}}]},
            "data.readings[0].values.t: should be a number, true, false or null"
            " (a failed read), got [1, 2]",
        ),
    ],
)
def test_each_problem_is_named_with_its_path(data: dict[str, Any], problem: str) -> None:
    window, problems = parse_window(data)
    assert window is None and str(problems[0]) == problem
