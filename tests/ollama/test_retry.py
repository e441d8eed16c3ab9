"""Ollama retries: tenacity's loop, the project's one backoff (link/backoff) for the delays."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from tenacity import RetryCallState

from mcptool.link import Backoff
from mcptool.ollama import OllamaBadRequest, OllamaBusy, OllamaError, RetryPolicy
from mcptool.ollama.retry import Retrier, wait_backoff


def waits(policy: RetryPolicy, retries: int) -> list[float]:
    wait = wait_backoff(policy)
    delays = []
    for attempt in range(1, retries + 1):
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = attempt
        delays.append(wait(state))
    return delays


def test_the_delays_are_the_link_backoffs_with_the_policys_numbers() -> None:
    policy = RetryPolicy(base=0.5, cap=8.0, jitter=0.0)
    backoff = Backoff(initial=0.5, multiplier=2.0, jitter=0.0, maximum=8.0)
    expected = [backoff.next_delay() for _ in range(7)]
    assert waits(policy, 7) == expected == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_stays_within_its_fraction_and_never_above_the_cap() -> None:
    for _ in range(200):
        first, second, *_, last = waits(RetryPolicy(base=0.5, cap=8.0), 8)
        assert 0.4 <= first <= 0.6
        assert 0.8 <= second <= 1.2
        assert 6.4 <= last <= 8.0


@pytest.mark.parametrize(
    "options",
    [{"attempts": 0}, {"base": 0}, {"base": 2.0, "cap": 1.0}, {"multiplier": 0.5}, {"jitter": 1}],
)
def test_a_policy_that_cannot_work_is_refused_when_made(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="needs"):
        RetryPolicy(**options)  # type: ignore[arg-type]


def failing(errors: list[OllamaError]) -> tuple[Callable[[], object], list[int]]:
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "answer"

    return attempt, calls


FAST = RetryPolicy(attempts=3, base=0.001, cap=0.002)


async def test_a_retryable_failure_is_tried_again_until_the_attempts_run_out() -> None:
    loop = asyncio.get_running_loop()
    attempt, calls = failing([OllamaBusy("u", "busy"), OllamaBusy("u", "busy")])
    assert await Retrier(FAST).run(loop.time() + 60, attempt) == "answer"  # type: ignore[arg-type]
    assert len(calls) == 3

    attempt, calls = failing([OllamaBusy("u", "busy")] * 3)
    with pytest.raises(OllamaBusy):
        await Retrier(FAST).run(loop.time() + 60, attempt)  # type: ignore[arg-type]
    assert len(calls) == 3


async def test_a_caller_error_is_never_retried() -> None:
    loop = asyncio.get_running_loop()
    attempt, calls = failing([OllamaBadRequest("u", 400, "bad")])
    with pytest.raises(OllamaBadRequest):
        await Retrier(FAST).run(loop.time() + 60, attempt)  # type: ignore[arg-type]
    assert len(calls) == 1


async def test_no_retry_sleeps_past_the_total_deadline() -> None:
    loop = asyncio.get_running_loop()
    attempt, calls = failing([OllamaBusy("u", "busy")])
    slow = RetryPolicy(attempts=5, base=30.0, cap=60.0)
    with pytest.raises(OllamaBusy):
        await Retrier(slow).run(loop.time() + 10, attempt)  # type: ignore[arg-type]
    assert len(calls) == 1
