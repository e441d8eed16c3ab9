"""Which deadline ends a phase first, and how long it was, for the error message."""

from __future__ import annotations

from mcptool.ollama import Timeouts
from mcptool.ollama.deadlines import NO_DEADLINE, earliest, finite, span, total_deadline


def test_a_phase_ends_at_its_own_deadline_when_that_is_sooner() -> None:
    assert earliest(100.0, 5.0, "load", 200.0) == (105.0, "load")


def test_the_total_deadline_wins_when_it_is_sooner_or_the_phase_has_none() -> None:
    assert earliest(100.0, 60.0, "read", 130.0) == (130.0, "total")
    assert earliest(100.0, None, "load", 130.0) == (130.0, "total")


def test_no_deadline_at_all_is_none_for_asyncio() -> None:
    assert total_deadline(100.0, Timeouts(total=None)) == NO_DEADLINE
    assert earliest(100.0, None, "read", NO_DEADLINE) == (None, "total")
    assert finite(NO_DEADLINE) is None
    assert total_deadline(100.0, Timeouts(total=900.0)) == 1000.0


def test_the_span_names_the_deadline_that_passed() -> None:
    timeouts = Timeouts(load=300.0, total=900.0)
    assert span("load", timeouts.load, timeouts) == 300.0
    assert span("total", timeouts.load, timeouts) == 900.0
    assert span("read", None, timeouts) == 0.0
