"""The routes' health checks on asyncio: one Ollama call per endpoint, on its own timer.

Each endpoint is asked ``GET /api/tags`` (the models it has pulled). Why that call:

- it loads nothing: ``/api/show`` reads the model's file for its metadata, and an empty
  generate (Ollama's way to load a model) would load a 14B model on a box whose memory
  holds the small one, every check;
- Ollama answers it outside its scheduler, so a check never waits behind a 30-s
  generation and a busy box is not taken for a dead one (``503 busy`` is the breaker's
  business, per call);
- one answer serves every route on that endpoint, and says whether each one's model is
  there (a name without a tag means ``:latest``, as Ollama matches it).

The checks run off the analysis path (their own task, their own client with one attempt
and a short deadline), and ``HealthBook`` (``health``, sans-IO) decides. A route that is
not healthy at the first check is logged once as a WARNING naming endpoint, model and
fix; later changes are logged as they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from mcptool.analysis.health import HealthBook, HealthChange
from mcptool.ollama import (
    CircuitBreaker,
    OllamaClient,
    OllamaError,
    RetryPolicy,
    Timeouts,
    can_pull,
)
from mcptool.serving.ollama_api import same_model

__all__ = ["HealthChecker"]

log = logging.getLogger(__name__)


class HealthChecker:
    """Checks the endpoints of ``book`` when they fall due; ``first_round`` at start."""

    def __init__(
        self,
        book: HealthBook,
        *,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.book = book
        self.timeout_s = timeout_s
        self._clock = clock
        self._clients: dict[str, OllamaClient] = {}
        self._task: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()
        self._woken = asyncio.Event()

    async def check_due(self) -> list[HealthChange]:
        """Check the endpoints due now and wait for the outcomes (at start: every one)."""
        due = self.book.due(self._clock())
        changes = await asyncio.gather(*(self._check(e) for e in due))
        return [c for each in changes for c in each]

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Check from now on, each endpoint every ``book.interval_s`` (needs a loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="analysis-route-checks"
            )

    async def aclose(self) -> None:
        tasks = [t for t in (self._task, *self._checks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def _run(self) -> None:
        while True:
            for endpoint in self.book.due(self._clock()):
                task = asyncio.create_task(self._check(endpoint))  # a slow one delays none
                self._checks.add(task)
                task.add_done_callback(self._checks.discard)
            due = self.book.next_due()
            self._woken.clear()
            wait = None if due is None else max(0.0, due - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), wait)

    async def _check(self, endpoint: str) -> list[HealthChange]:
        routes = [h for h in self.book.routes.values() if h.endpoint == endpoint]
        try:
            names = await self._models(endpoint)
        except (OllamaError, OSError) as exc:
            changes = self.book.observe(endpoint, self._clock(), error=str(exc))
        else:
            present = {h.model for h in routes if any(same_model(h.model, n) for n in names)}
            changes = self.book.observe(
                endpoint,
                self._clock(),
                models=present,
                # model serve and the simulator cannot pull: say what they serve instead
                serves=None if can_pull(self._clients[endpoint].server) else names,
            )
        self._woken.set()
        report(changes)
        return changes

    async def _models(self, endpoint: str) -> list[str]:
        client = self._clients.get(endpoint)
        if client is None:
            limit = self.timeout_s
            client = self._clients[endpoint] = OllamaClient(
                endpoint,
                timeouts=Timeouts(connect=limit, read=limit, total=limit),
                retry=RetryPolicy(attempts=1),  # the next check is the retry
                # the book judges failures; a breaker here would answer for the endpoint
                breaker=CircuitBreaker(failure_threshold=1_000_000),
            )
        return [m.name for m in await client.list_models()]


def report(changes: Iterable[HealthChange]) -> None:
    """One log line per change: a WARNING for a route found unhealthy (at start: naming
    endpoint, model and the fix), INFO for one that rejoins."""
    for change in changes:
        where = f"analysis route {change.model} at {change.endpoint}"
        if not change.healthy and change.first:
            log.warning("%s is not healthy at start, skipped until it is: %s", where, change.reason)
        elif not change.healthy:
            log.warning("%s is unhealthy, skipped until it is healthy: %s", where, change.reason)
        elif not change.first:
            log.info("%s is healthy again and rejoins the routing", where)
