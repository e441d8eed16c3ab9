"""Reconnect delays follow gRPC's connection-backoff defaults."""

from __future__ import annotations

import itertools
import random

import pytest

from mcptool.link import Backoff


def test_defaults_are_grpcs() -> None:
    backoff = Backoff()
    assert (backoff.initial, backoff.multiplier, backoff.jitter, backoff.maximum) == (
        1.0,
        1.6,
        0.2,
        120.0,
    )


def test_without_jitter_delays_grow_by_the_multiplier_up_to_the_cap() -> None:
    backoff = Backoff(jitter=0.0)
    delays = [backoff.next_delay() for _ in range(14)]
    assert delays[:4] == pytest.approx([1.0, 1.6, 2.56, 4.096])
    assert delays[-1] == 120.0
    assert all(b >= a for a, b in itertools.pairwise(delays))


def test_jitter_stays_within_20_percent_and_never_above_the_cap() -> None:
    backoff = Backoff(rng=random.Random(7))
    for _ in range(300):
        base = backoff.base()
        delay = backoff.next_delay()
        assert base * 0.8 <= delay <= min(base * 1.2, 120.0)


def test_jitter_spreads_a_stampede() -> None:
    first = {Backoff(rng=random.Random(seed)).next_delay() for seed in range(50)}
    assert len(first) == 50
    assert min(first) < 0.9 and max(first) > 1.1


def test_reset_starts_again_from_the_initial_delay() -> None:
    backoff = Backoff(jitter=0.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_thousands_of_failures_do_not_overflow() -> None:
    backoff = Backoff(jitter=0.0, attempts=100_000)
    assert backoff.next_delay() == 120.0


@pytest.mark.parametrize(
    "options", [{"initial": 0}, {"initial": 5, "maximum": 1}, {"multiplier": 0.5}, {"jitter": 1}]
)
def test_nonsense_settings_are_refused(options: dict) -> None:
    with pytest.raises(ValueError):
        Backoff(**options)


def test_a_caller_that_counts_its_own_failures_gets_the_same_delays() -> None:
    """The poller counts failures per unit and asks ``delay(n)``: the same curve as
    ``next_delay`` after n failures, and nothing counted in the backoff itself."""
    counted, asked = Backoff(jitter=0.0), Backoff(jitter=0.0)
    expected = [counted.next_delay() for _ in range(12)]
    assert [asked.delay(n) for n in range(12)] == expected
    assert asked.attempts == 0
