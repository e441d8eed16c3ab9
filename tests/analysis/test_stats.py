"""Window statistics: what the model is shown must equal what a textbook computes."""

from __future__ import annotations

import math
import statistics

from hypothesis import given
from hypothesis import strategies as st

from mcptool.analysis.stats import DeviceWindow

T0 = 1_700_000_000.0  # a multiple of 10: windows of 10 s start here


def test_a_window_closes_when_a_reading_of_the_next_window_arrives() -> None:
    window = DeviceWindow("boiler", 10.0, 5.0)
    for i in range(10):
        assert window.add(T0 + i, {"temp": 20.0 + i}) is None
    closed = window.add(T0 + 10, {"temp": 99.0})
    assert closed is not None
    assert (closed.start, closed.end, closed.readings) == (T0, T0 + 10, 10)
    temp = closed.points["temp"]
    assert (temp.count, temp.min, temp.max, temp.last) == (10, 20.0, 29.0, 29.0)
    assert temp.mean == 24.5
    assert math.isclose(temp.std or 0, statistics.stdev(20.0 + i for i in range(10)))
    assert math.isclose(temp.rate_per_s or 0, 1.0)  # one degree per second


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=200))
def test_mean_and_std_match_the_statistics_module(values: list[float]) -> None:
    window = DeviceWindow("d", 1e9, 1e9)
    for i, v in enumerate(values):
        window.add(T0 + i * 1e-3, {"p": v})
    s = window.close().points["p"]
    assert math.isclose(s.mean or 0, statistics.fmean(values), rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(s.std or 0, statistics.stdev(values), rel_tol=1e-6, abs_tol=1e-6)
    assert (s.min, s.max) == (min(values), max(values))


def test_an_interval_longer_than_the_gap_limit_counts_as_a_gap() -> None:
    window = DeviceWindow("d", 60.0, 2.5)
    for t in (0, 1, 2, 6, 7, 11):  # two holes of 4 s
        window.add(T0 + t, {"p": 1.0})
    assert window.close().points["p"].gaps == 2


def test_failed_reads_and_text_values_stay_out_of_the_arithmetic() -> None:
    window = DeviceWindow("d", 60.0, 10.0)
    window.add(T0, {"p": 1.0, "name": "PUMP-1"})
    window.add(T0 + 1, {"p": None, "name": "PUMP-1"})
    window.add(T0 + 2, {"p": 3.0})
    window.failed_poll(T0 + 3)
    closed = window.close()
    assert closed.points["p"].count == 2
    assert closed.points["p"].missing == 1
    assert closed.points["p"].mean == 2.0
    assert closed.points["name"].count == 0 and closed.points["name"].last == "PUMP-1"
    assert closed.failed_polls == 1


def test_bools_are_counted_as_discrete_points() -> None:
    window = DeviceWindow("io", 60.0, 10.0)
    for v in (True, False, True, True):
        window.add(T0, {"di0": v})
    s = window.close().points["di0"]
    assert s.discrete and s.mean == 0.75


def test_a_silent_devices_window_closes_after_its_end_plus_grace() -> None:
    window = DeviceWindow("d", 10.0, 5.0)
    window.add(T0 + 1, {"p": 1.0})
    assert window.close_if_due(T0 + 10.5, grace_s=1.0) is None
    closed = window.close_if_due(T0 + 11.0, grace_s=1.0)
    assert closed is not None and closed.points["p"].count == 1
    assert not window.is_open
