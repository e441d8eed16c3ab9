"""What an analyzer carries between a device's windows, as JSON: a fresh analyzer that
restores it judges the next window exactly as the one that saw the windows before (the
fleet's workers continue each other's devices this way)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcptool.analysis import STATE_VERSION, AnalysisConfig, Analyzer, PointInfo, WindowReport
from tests.analysis.conftest import T0

CONFIG = AnalysisConfig(window_s=10.0, min_baseline_windows=3, offline_after_s=None)
POINTS = [PointInfo("temp", "°C"), PointInfo("pressure", "bar"), PointInfo("pump", "")]
PER_WINDOW = 8

# one window of one point: how its readings move (noise, stuck, flat, a level jump)
shape = st.tuples(
    st.sampled_from(["noisy", "stuck", "flat", "ramp"]),
    st.floats(-1e3, 1e3, allow_nan=False),  # level
    st.floats(0.0, 10.0, allow_nan=False),  # amplitude
)
window = st.tuples(
    st.integers(1, 3),  # windows since the one before (2, 3: the device was silent)
    st.fixed_dictionaries({"temp": shape, "pressure": shape}),
    st.booleans(),  # the pump's state
    st.booleans(),  # a failed read of pressure in the window
)


def value(kind: str, level: float, amplitude: float, i: int) -> float:
    if kind == "stuck":
        return level
    if kind == "flat":
        return level + amplitude * 1e-6 * math.sin(i * 1.3)
    if kind == "ramp":
        return level + amplitude * i
    return level + amplitude * math.sin(i * 1.7 + level)


def readings(spec: Any, index: int) -> list[tuple[float, dict[str, Any]]]:
    _, shapes, pump, failed = spec
    polls = []
    for i in range(PER_WINDOW):
        values: dict[str, Any] = {n: value(*s, i) for n, s in shapes.items()}
        values["pump"] = pump if i % 3 else not pump
        if failed and i == 2:
            values["pressure"] = None
        polls.append((T0 + index * 10.0 + i * 10.0 / PER_WINDOW, values))
    return polls


def judged(report: WindowReport) -> tuple[Any, ...]:
    return (
        report.window.start,
        [(e.rule, e.points, e.detail, e.values) for e in report.events],
        dict(report.usual),
    )


def wire(state: dict[str, Any]) -> dict[str, Any]:
    """Through JSON text and back, as it travels between processes."""
    return json.loads(json.dumps(state))


def continued(state: dict[str, Any] | None) -> Analyzer:
    analyzer = Analyzer(CONFIG)
    analyzer.add_device("boiler", POINTS)
    if state is not None:
        analyzer.restore("boiler", state)
    return analyzer


@settings(max_examples=60, deadline=None)
@given(st.lists(window, min_size=1, max_size=12))
def test_a_restored_analyzer_judges_each_window_as_the_one_that_saw_them_all(
    windows: list[Any],
) -> None:
    one = Analyzer(CONFIG)
    one.add_device("boiler", POINTS)
    through: list[WindowReport] = []
    restored: list[WindowReport] = []
    state = None
    index = 0
    for spec in windows:
        index += spec[0]
        polls = readings(spec, index)
        for t, values in polls:
            through.extend(one.observe("boiler", t, values))
        fresh = continued(state)  # a new worker, maybe on another host
        for t, values in polls:
            restored.extend(fresh.observe("boiler", t, values))
        restored.extend(fresh.tick(T0 + (index + 2) * 10.0))
        state = wire(fresh.state("boiler"))
    through.extend(one.tick(T0 + (index + 2) * 10.0))
    assert [judged(r) for r in restored] == [judged(r) for r in through]
    assert state == wire(one.state("boiler"))


def stuck_in_the_last_window(carry: bool) -> list[list[str]]:
    state = None
    rules = []
    for index in range(8):
        analyzer = continued(state)
        for i in range(PER_WINDOW):
            t = T0 + index * 10.0 + i * 10.0 / PER_WINDOW
            temp = 61.25 if index == 7 else 60.0 + math.sin(i + index)
            analyzer.observe("boiler", t, {"temp": temp})
        (report,) = analyzer.tick(T0 + (index + 2) * 10.0)
        rules.append([e.rule for e in report.events])
        state = wire(analyzer.state("boiler")) if carry else None
    return rules


def test_the_statistical_rules_fire_in_a_window_judged_by_a_restored_analyzer() -> None:
    assert stuck_in_the_last_window(carry=True) == [[]] * 7 + [["stuck"]]
    # without the state every window is the device's first: nothing to compare with
    assert stuck_in_the_last_window(carry=False) == [[]] * 8


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@given(json_values)
def test_anything_but_a_state_is_refused_with_a_value_error_and_changes_nothing(
    junk: Any,
) -> None:
    analyzer = restored_with_history()
    before = analyzer.state("boiler")
    for state in (junk, {**before, "points": junk}, {**before, "baseline": junk}):
        try:
            analyzer.restore("boiler", state)
        except ValueError:
            assert analyzer.state("boiler") == before
        analyzer.restore("boiler", before)


def restored_with_history(windows: int = 4) -> Analyzer:
    analyzer = continued(None)
    for index in range(windows):
        for i in range(PER_WINDOW):
            t = T0 + index * 10.0 + i * 10.0 / PER_WINDOW
            analyzer.observe("boiler", t, {"temp": 60.0 + math.sin(i + index), "mode": "auto"})
    analyzer.tick(T0 + (windows + 2) * 10.0)
    return analyzer


def test_an_unknown_version_or_a_mangled_history_is_refused() -> None:
    analyzer = restored_with_history()
    state = wire(analyzer.state("boiler"))
    series = state["baseline"]["temp"]
    for bad in (
        {**state, "version": STATE_VERSION + 1},
        {k: v for k, v in state.items() if k != "version"},
        {**state, "baseline": {"temp": {**series, "means": series["means"][:-1]}}},
        {**state, "baseline": {"temp": {**series, "varied": [1] * len(series["varied"])}}},
        {**state, "baseline": {"temp": {**series, "stds": ["1"] * len(series["stds"])}}},
        {**state, "points": {"temp": {"last": 1.0, "t": "yesterday", "discrete": False}}},
    ):
        with pytest.raises(ValueError):
            continued(None).restore("boiler", bad)


def test_the_state_keeps_the_newest_windows_it_is_asked_for_and_the_size_on_restore() -> None:
    analyzer = restored_with_history(windows=6)
    newest = analyzer.state("boiler", windows=2)["baseline"]["temp"]
    assert newest == {k: v[-2:] for k, v in analyzer.state("boiler")["baseline"]["temp"].items()}
    small = Analyzer(dataclasses.replace(CONFIG, baseline_windows=3))
    small.restore("boiler", analyzer.state("boiler"))
    assert small.state("boiler")["baseline"]["temp"]["means"] == newest_means(analyzer, 3)


def newest_means(analyzer: Analyzer, count: int) -> list[float]:
    return analyzer.state("boiler")["baseline"]["temp"]["means"][-count:]


def test_a_state_is_taken_between_windows_only() -> None:
    analyzer = continued(None)
    analyzer.observe("boiler", T0, {"temp": 60.0})
    with pytest.raises(ValueError, match="window is open"):
        analyzer.state("boiler")
    with pytest.raises(ValueError, match="window is open"):
        analyzer.restore("boiler", restored_with_history().state("boiler"))
