"""When windows close: decided from the readings alone, the same on every hub."""

from __future__ import annotations

import pytest

from mcptool.fleet import ClosedWindow, OpenWindow, WindowTracker
from mcptool.fleet.subjects import HEADER_CLOSED, HEADER_FIRST, HEADER_WINDOW
from mcptool.fleet.windows import closed_index


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


# -- closing by time: a silent device's last window (fake clock: ``at`` and ``now``) ----


def tracker_with_window(grace_s: float = 30) -> WindowTracker:
    """Window 10 (100-110 s) of n/d holding stream seqs 5..7, the last stored at 108."""
    tracker = WindowTracker(10, grace_s=grace_s)
    tracker.seed("n", "d", None)
    for seq, ts in ((5, 101.0), (6, 104.0), (7, 108.0)):
        tracker.stored("n", "d", tracker.place("n", "d", ts), seq, at=ts)
    return tracker


def test_a_silent_devices_window_closes_grace_after_its_end_and_only_once() -> None:
    tracker = tracker_with_window(grace_s=30)
    assert tracker.tick(139.9) == []
    assert tracker.tick(140.0) == [ClosedWindow("n", "d", 10, 10, first=5, last=7)]
    assert tracker.tick(140.1) == []
    assert tracker.tick(10_000) == []


def test_readings_arriving_late_in_a_backlog_push_the_deadline_to_their_arrival() -> None:
    # a gateway replays an hour-old backlog: window 10's readings arrive at 3600 s
    tracker = WindowTracker(10, grace_s=30)
    tracker.seed("n", "d", None)
    for seq, ts in ((5, 101.0), (6, 104.0)):
        tracker.stored("n", "d", tracker.place("n", "d", ts), seq, at=3600.0 + seq)
    assert tracker.tick(3606 + 29.9) == []
    assert [w.index for w in tracker.tick(3606 + 30)] == [10]


def test_after_a_close_by_time_the_next_reading_opens_a_window_and_closes_nothing() -> None:
    tracker = tracker_with_window()
    tracker.tick(200)
    placement = tracker.place("n", "d", 305.0)
    assert placement.closes is None and not placement.late
    assert placement.headers == {HEADER_WINDOW: "30"}
    tracker.stored("n", "d", placement, 9, at=305)
    assert tracker.place("n", "d", 311).closes == ClosedWindow("n", "d", 30, 10, 9, 9)


def test_a_reading_of_a_window_closed_by_time_is_late_and_says_so_in_its_headers() -> None:
    tracker = tracker_with_window()
    tracker.tick(200)
    late = tracker.place("n", "d", 109.0)
    assert late.late and late.closes is None
    assert late.headers == {HEADER_WINDOW: "10", HEADER_CLOSED: "10"}
    tracker.stored("n", "d", late, 8, at=201)
    assert tracker.tick(10_000) == []  # no second close: no second finding
    # a hub seeding from that late reading knows no window is open
    assert OpenWindow.from_headers(late.headers, 8) is None
    assert closed_index(late.headers) == 10
    assert closed_index({HEADER_WINDOW: "10"}) is None


def test_a_hub_seeded_with_a_window_another_closed_by_time_does_not_close_it_again() -> None:
    tracker = WindowTracker(10, grace_s=30)
    tracker.seed("n", "d", OpenWindow(10, 5, 7, at=108), closed=10)
    assert tracker.tick(10_000) == []
    assert tracker.place("n", "d", 109).late
    assert tracker.place("n", "d", 125).closes is None


def test_a_window_closed_by_a_later_reading_is_not_closed_again_by_time() -> None:
    tracker = tracker_with_window()
    closing = tracker.place("n", "d", 112.0)
    tracker.stored("n", "d", closing, 8, at=112)
    assert [w.index for w in tracker.tick(10_000)] == [11]  # the new window, not 10


def test_a_seed_without_a_storage_time_uses_the_window_end() -> None:
    tracker = WindowTracker(10, grace_s=5)
    tracker.seed("n", "d", OpenWindow(10, 5, 7))
    assert tracker.tick(114.9) == [] and len(tracker.tick(115)) == 1


def test_grace_must_not_be_negative() -> None:
    with pytest.raises(ValueError):
        WindowTracker(10, grace_s=-1)


def test_a_duplicate_of_a_reading_the_window_holds_changes_nothing() -> None:
    tracker = tracker_with_window()
    tracker.stored("n", "d", tracker.place("n", "d", 104.0), 6, at=300)  # seq 6 again
    assert tracker.place("n", "d", 112).closes == ClosedWindow("n", "d", 10, 10, 5, 7)
    assert tracker.tick(139.9) == []  # its arrival did not move the deadline either


def test_a_window_closed_by_time_but_not_published_is_due_again() -> None:
    tracker = tracker_with_window()
    [window] = tracker.tick(200)
    tracker.reopen(window)
    assert tracker.tick(201) == [window]
