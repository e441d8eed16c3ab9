"""The deadlines of an Ollama call and which of them ends first.

Four phases, each bounded on its own: *connect* (the TCP connect and the wait for a
pooled connection), *load* (until the first chunk: the queue at the server, a cold model
load, prompt evaluation, since Ollama sends headers only with the first chunk), *read*
(between two chunks after that) and *total* (the whole call, retries included). Times are
the event loop's clock, passed in: nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

NO_DEADLINE = float("inf")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Deadlines in seconds (None: none). ``load`` is until the first chunk, which on a
    cold model includes loading it; ``read`` is between chunks after that."""

    connect: float | None = 5.0
    load: float | None = 300.0
    read: float | None = 60.0
    total: float | None = 900.0
    write: float | None = 30.0


def total_deadline(now: float, timeouts: Timeouts) -> float:
    """When the whole call must be over (``NO_DEADLINE`` without a total timeout)."""
    return now + timeouts.total if timeouts.total else NO_DEADLINE


def earliest(
    now: float, seconds: float | None, name: str, deadline: float
) -> tuple[float | None, str]:
    """The sooner of a phase deadline and the total one (None: no deadline), and its name."""
    if seconds is not None and now + seconds < deadline:
        return now + seconds, name
    return finite(deadline), "total"


def finite(deadline: float) -> float | None:
    """``deadline`` as ``asyncio.timeout_at`` takes it (None: never)."""
    return None if deadline == NO_DEADLINE else deadline


def span(name: str, phase: float | None, timeouts: Timeouts) -> float:
    """The length in seconds of the deadline called ``name``, for the error message."""
    return float((timeouts.total if name == "total" else phase) or 0)
