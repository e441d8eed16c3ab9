"""When windows close: decided from the readings alone, the same on every hub."""

from __future__ import annotations

import pytest

from mcptool.fleet import ClosedWindow, OpenWindow, WindowTracker
from mcptool.fleet.subjects import HEADER_FIRST, HEADER_WINDOW


def test_first_reading_opens_a_window_and_closes_none() -> None:
    tracker = WindowTracker(10)
    tracker.seed("n", "d", None)
    placement = tracker.place("n", "d", 105.0)
    assert placement.index == 10
    assert placement.closes is None
    assert placement.headers == {HEADER_WINDOW: "10"}


def test_a_reading_of_a_later_window_closes_the_open_one_with_its_stream_range() -> None:
    tracker = WindowTracker(10)
    tracker.seed("n", "d", None)
    for seq, ts in ((5, 101.0), (9, 104.0), (12, 109.9)):
        placement = tracker.place("n", "d", ts)
        tracker.stored("n", "d", placement, seq)
    assert placement.headers == {HEADER_WINDOW: "10", HEADER_FIRST: "5"}
    closing = tracker.place("n", "d", 110.0)
    assert closing.closes == ClosedWindow("n", "d", 10, 10, first=5, last=12)
    assert closing.closes.start == 100 and closing.closes.end == 110
    tracker.stored("n", "d", closing, 20)
    assert tracker.place("n", "d", 111).headers == {HEADER_WINDOW: "11", HEADER_FIRST: "20"}


def test_a_hub_seeded_from_the_stream_closes_the_same_window_as_the_hub_before_it() -> None:
    stored = OpenWindow.from_headers({HEADER_WINDOW: "10", HEADER_FIRST: "5"}, 12)
    assert stored == OpenWindow(10, 5, 12)
    tracker = WindowTracker(10)
    tracker.seed("n", "d", stored)
    assert tracker.place("n", "d", 125.0).closes == ClosedWindow("n", "d", 10, 10, 5, 12)


def test_the_first_reading_of_a_window_stored_alone_names_itself_as_first() -> None:
    assert OpenWindow.from_headers({HEADER_WINDOW: "3"}, 44) == OpenWindow(3, 44, 44)
    assert OpenWindow.from_headers({}, 44) is None
    assert OpenWindow.from_headers({HEADER_WINDOW: "x"}, 44) is None


def test_a_late_reading_is_filed_under_the_open_window_and_closes_nothing() -> None:
    tracker = WindowTracker(10)
    tracker.seed("n", "d", OpenWindow(10, 5, 12))
    late = tracker.place("n", "d", 95.0)
    assert late.late and late.closes is None
    assert late.headers == {HEADER_WINDOW: "10", HEADER_FIRST: "5"}
    tracker.stored("n", "d", late, 13)
    assert tracker.place("n", "d", 120).closes == ClosedWindow("n", "d", 10, 10, 5, 13)


def test_window_round_trips_through_json() -> None:
    window = ClosedWindow("n.1", "d", 7, 2.5, 3, 9)
    assert ClosedWindow.from_json(window.to_json()) == window


def test_window_length_must_be_positive() -> None:
    with pytest.raises(ValueError):
        WindowTracker(0)
