"""The routes' health, decided without I/O: check outcomes and a fake clock in, changes out."""

from __future__ import annotations

import pytest

from mcptool.analysis.health import HEALTHY, UNHEALTHY, UNKNOWN, HealthBook

SMALL = "http://127.0.0.1:11434"
BIG = "http://127.0.0.1:11435"
DOWN = f"cannot reach Ollama at {BIG}: is `ollama serve` running?"


def book(fall: int = 2, rise: int = 1) -> HealthBook:
    health = HealthBook(15.0, fall=fall, rise=rise)
    health.add("small@a", SMALL, "qwen2.5-coder:0.5b")
    health.add("new@a", SMALL, "llama3.2:3b")
    health.add("big@b", BIG, "qwen2.5:14b")
    return health


def test_a_route_not_checked_yet_is_usable() -> None:
    health = book()
    assert health.routes["big@b"].state == UNKNOWN and health.usable("big@b")
    assert health.usable("not-a-checked-route")  # the embedded model: never checked


def test_one_check_of_an_endpoint_serves_every_route_on_it() -> None:
    health = book()
    assert health.due(0.0) == [SMALL, BIG]
    assert health.due(0.0) == []  # in flight: not due again until its outcome is in
    changes = health.observe(SMALL, 0.2, models={"qwen2.5-coder:0.5b"})
    assert [(c.route, c.healthy, c.first) for c in changes] == [
        ("small@a", True, True),
        ("new@a", False, True),
    ]
    assert "run `ollama pull llama3.2:3b` there" in changes[1].reason
    assert SMALL in changes[1].reason
    assert health.next_due() == 15.2  # SMALL's next; BIG is still being checked
    health.observe(BIG, 0.3, error=DOWN)
    assert health.due(15.0) == [] and health.due(15.2) == [SMALL]
    assert health.next_due() == 15.3  # BIG's


def test_the_first_check_decides_at_once_and_names_the_fix() -> None:
    health = book()
    health.due(0.0)
    [change] = health.observe(BIG, 1.0, error=DOWN)
    assert (change.route, change.healthy, change.first, change.reason) == (
        "big@b",
        False,
        True,
        DOWN,
    )
    assert not health.usable("big@b") and health.routes["big@b"].state == UNHEALTHY


def test_a_healthy_route_falls_only_after_fall_failed_checks_in_a_row() -> None:
    health = book(fall=2)
    now = 0.0
    health.due(now)
    health.observe(BIG, now, models={"qwen2.5:14b"})
    for outcome in ("fail", "ok", "fail"):  # one lost check at a time: still serving
        now += 15.0
        health.due(now)
        if outcome == "fail":
            assert health.observe(BIG, now, error=DOWN) == []
        else:
            assert health.observe(BIG, now, models={"qwen2.5:14b"}) == []
        assert health.routes["big@b"].state == HEALTHY
    now += 15.0
    health.due(now)
    [change] = health.observe(BIG, now, error=DOWN)
    assert not change.healthy and not change.first and not health.usable("big@b")


def test_an_unhealthy_route_rejoins_after_rise_good_checks() -> None:
    health = book(rise=2)
    health.due(0.0)
    health.observe(BIG, 0.0, models=set())  # reachable, the model not pulled
    health.due(15.0)
    assert health.observe(BIG, 15.0, error=DOWN) == []
    assert health.routes["big@b"].reason == DOWN  # the latest cause, for status
    health.due(30.0)
    assert health.observe(BIG, 30.0, models={"qwen2.5:14b"}) == []
    assert not health.usable("big@b")
    health.due(45.0)
    [change] = health.observe(BIG, 45.0, models={"qwen2.5:14b"})
    assert change.healthy and not change.first and change.reason == ""
    assert health.usable("big@b") and health.routes["big@b"].reason == ""


@pytest.mark.parametrize(("interval", "fall", "rise"), [(0.0, 2, 1), (15.0, 0, 1), (15.0, 2, 0)])
def test_settings_that_cannot_work_are_refused(interval: float, fall: int, rise: int) -> None:
    with pytest.raises(ValueError):
        HealthBook(interval, fall=fall, rise=rise)


def test_a_missing_model_is_pulled_on_an_ollama_and_named_on_a_server_that_cannot_pull() -> None:
    health = book()
    health.due(0.0)
    [*_, ollama] = health.observe(SMALL, 0.1, models={"qwen2.5-coder:0.5b"})
    assert (
        ollama.reason
        == f"model llama3.2:3b is not pulled at {SMALL}: run `ollama pull llama3.2:3b` there"
    )
    [served] = health.observe(BIG, 0.2, serves=["qwen2.5-coder:0.5b"])
    assert served.reason.startswith(
        f"model qwen2.5:14b is not served at {BIG}, which serves only qwen2.5-coder:0.5b:"
    )
    assert "ollama pull" not in served.reason
