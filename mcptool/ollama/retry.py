"""Which failed calls are tried again, how often, and how long to wait in between.

tenacity runs the loop (attempts, the stop before the total deadline, which errors); the
delays come from the project's one backoff, :class:`mcptool.link.backoff.Backoff`
(exponential with +-jitter, clamped to a cap), so a reconnecting link, a retrying spool
and a retrying Ollama call all wait by the same rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base

from mcptool.backoff import Backoff
from mcptool.ollama.errors import OllamaError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; before retry n (from 0) sleep ``base * multiplier**n``
    +- ``jitter`` (a fraction), at most ``cap`` seconds."""

    attempts: int = 3
    base: float = 0.5
    cap: float = 8.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs attempts >= 1")
        self.backoff()  # the same checks as every other backoff, at construction

    def backoff(self, retries: int = 0) -> Backoff:
        """The delay policy, positioned after ``retries`` retries."""
        return Backoff(
            initial=self.base,
            multiplier=self.multiplier,
            jitter=self.jitter,
            maximum=self.cap,
            attempts=retries,
        )


class wait_backoff(wait_base):  # named like tenacity's own waits (wait_exponential, ...)
    """tenacity's wait, from a :class:`RetryPolicy`'s backoff."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.policy.backoff(retry_state.attempt_number - 1).next_delay()


def retryable(exc: BaseException) -> bool:
    return isinstance(exc, OllamaError) and exc.retryable


class Retrier:
    """Runs an attempt under a policy; built once per client (a tenacity retrier's parts
    cost more to build than a successful call)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._stop_attempts = stop_after_attempt(policy.attempts)
        self._wait = wait_backoff(policy)
        self._retry_if = retry_if_exception(retryable)

    async def run(self, deadline: float, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, retried by the policy, never sleeping past ``deadline`` (loop
        time). The first try runs outside tenacity (the common case, success, then costs
        nothing); a retryable failure is handed to tenacity as its attempt 1, so its
        backoff and stops apply from there."""
        try:
            return await attempt()
        except OllamaError as exc:
            if not exc.retryable or self.policy.attempts < 2:
                raise
            first = exc
        replayed = False

        async def replay() -> T:
            nonlocal replayed
            if not replayed:
                replayed = True
                raise first
            return await attempt()

        loop = asyncio.get_running_loop()

        def past_deadline(state: Any) -> bool:
            return loop.time() + state.upcoming_sleep >= deadline

        retrying = AsyncRetrying(
            stop=self._stop_attempts | past_deadline,
            wait=self._wait,
            retry=self._retry_if,
            reraise=True,
        )
        return await retrying(replay)
