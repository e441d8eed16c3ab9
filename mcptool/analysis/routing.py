"""Routing between models: weighted first choice, a fallback chain, a breaker per route.

An edge box may reach several models: the small one on the box, a bigger one on another
box, a new one being tried on a share of windows. ``RoutedModel`` is one
``AnalysisModel`` over several: each call goes first to a route drawn by weight among
the routes that are not ``fallback`` only, then, when that one cannot answer
(``ModelUnavailable``: busy, down, timed out), to the others in their configured order.
A route that failed ``failures`` times in a row is skipped for ``reset_s`` (its breaker
is open), then tried again with one call (half open): a dead endpoint costs one timeout
per ``reset_s``, not one per window. A refused request (``ModelRejected``) is not the
route's fault and is passed up at once.

Two more inputs decide the order:

- **health** (``check_s``): each route's endpoint is checked on a timer of its own
  (``health_checks``); a route found down or without its model is skipped before a
  window waits on it, and rejoins when a check finds it healthy again;
- **the window's severity** (``model.WINDOW_SEVERITY``): a route with ``first_for =
  "critical"`` is asked first about windows whose triggers reach that severity (the
  bigger model for the boiler past its limit), then the rest as usual; other windows
  follow the weights.

Which model answered is the answer's ``model`` (Ollama reports it), so it is on every
finding; ``answered`` counts answers per route for the metrics, ``status`` tells each
route's health and breaker.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcptool.analysis.findings import rank
from mcptool.analysis.health import HealthBook, HealthChange
from mcptool.analysis.model import WINDOW_SEVERITY, AnalysisModel, ModelAnswer, ModelUnavailable

if TYPE_CHECKING:
    from mcptool.analysis.health_checks import HealthChecker

__all__ = ["Route", "RoutedModel"]


@dataclass(slots=True)
class Route:
    """One model behind the router, with its share of first choices and its breaker."""

    name: str
    model: AnalysisModel
    weight: float = 1.0
    fallback: bool = False  # only when the routes before it could not answer
    first_for: str | None = None  # asked first about windows at this severity or above
    endpoint: str | None = None  # the Ollama URL its health is checked at (None: not checked)
    failures: int = 0
    open_until: float = 0.0
    answered: int = 0
    failed: int = 0
    last_error: str | None = field(default=None)


class RoutedModel:
    """An ``AnalysisModel`` that routes each call (see the module's docstring)."""

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        failures: int = 3,
        reset_s: float = 30.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        check_s: float | None = None,
        check_timeout_s: float = 5.0,
    ) -> None:
        if not routes:
            raise ValueError("a router needs at least one route")
        self.routes = list(routes)
        self.name = "+".join(r.name for r in self.routes)
        self.failures = failures
        self.reset_s = reset_s
        self._rng = rng or random.Random()
        self._clock = clock
        self.health: HealthBook | None = None
        self._checker: HealthChecker | None = None
        checked = [r for r in self.routes if r.endpoint is not None]
        if check_s is not None and checked:
            from mcptool.analysis.health_checks import HealthChecker  # the client: on use

            self.health = HealthBook(check_s)
            for r in checked:
                self.health.add(r.name, r.endpoint, r.model.name)  # type: ignore[arg-type]
            self._checker = HealthChecker(self.health, timeout_s=check_timeout_s, clock=clock)

    def order(self, severity: str | None = None) -> list[Route]:
        """This call's routes: those that prefer ``severity`` first, then one drawn by
        weight, then the rest in order; routes with an open breaker or found unhealthy
        are left out."""
        now = self._clock()
        usable = [r for r in self.routes if r.open_until <= now and self._healthy(r)]
        first = [r for r in usable if _prefers(r, severity)]
        rest = [r for r in usable if r not in first]
        primary = [r for r in rest if not r.fallback and r.weight > 0]
        if primary:
            drawn = self._rng.choices(primary, weights=[r.weight for r in primary])[0]
            rest = [drawn, *(r for r in rest if r is not drawn)]
        return [*first, *rest]

    def _healthy(self, route: Route) -> bool:
        return self.health is None or self.health.usable(route.name)

    def status(self) -> list[dict[str, Any]]:
        """Each route as status and metrics show it: health, breaker, answers, failures."""
        now = self._clock()
        out = []
        for r in self.routes:
            health = self.health.routes.get(r.name) if self.health is not None else None
            out.append(
                {
                    "route": r.name,
                    "model": r.model.name,
                    "endpoint": r.endpoint or "embedded",
                    "weight": r.weight,
                    "fallback": r.fallback,
                    "first_for": r.first_for,
                    "health": health.state if health is not None else "not checked",
                    "health_reason": health.reason if health is not None else "",
                    "breaker": "open" if r.open_until > now else "closed",
                    "answered": r.answered,
                    "failed": r.failed,
                    "last_error": r.last_error,
                }
            )
        return out

    async def start_checks(self) -> None:
        """Check every route's endpoint once (a route unhealthy at start is logged with
        its fix), then keep checking on the timer. Idempotent."""
        if self._checker is None or self._checker.started:
            return
        self._checker.start()  # first: a second caller meanwhile returns at once
        await self.check_health()

    async def check_health(self) -> list[HealthChange]:
        """Check the endpoints whose check is due now, and wait for the verdicts (the
        timer does this by itself; at start every endpoint is due)."""
        return [] if self._checker is None else await self._checker.check_due()

    async def preload(self) -> None:
        await self.start_checks()
        for route in self.routes:
            if not self._healthy(route):
                continue  # no model to load there, and no wait for a dead box
            preload = getattr(route.model, "preload", None)
            if preload is not None:
                try:
                    await preload()
                except Exception as exc:  # a hint only, as in the pipeline
                    route.last_error = str(exc)

    async def ask(
        self, messages: Sequence[Mapping[str, str]], schema: Mapping[str, Any]
    ) -> ModelAnswer:
        if self._checker is not None and not self._checker.started:
            self._checker.start()  # a router asked without a preload is checked too
        reasons = []
        for route in self.order(WINDOW_SEVERITY.get()):
            try:
                answer = await route.model.ask(messages, schema)
            except ModelUnavailable as exc:
                self._failed(route, str(exc))
                reasons.append(f"{route.name}: {exc}")
                continue
            route.failures = 0
            route.answered += 1
            return answer
        if not reasons:
            raise ModelUnavailable(f"no route can be asked now: {self._why_none()}")
        raise ModelUnavailable("; ".join(reasons))

    def _why_none(self) -> str:
        why = []
        for r in self.routes:
            health = self.health.routes.get(r.name) if self.health is not None else None
            if health is not None and not health.usable:
                why.append(f"{r.name} unhealthy ({health.reason})")
            else:
                why.append(f"{r.name} breaker open")
        return "; ".join(why)

    def _failed(self, route: Route, reason: str) -> None:
        route.failed += 1
        route.failures += 1
        route.last_error = reason
        if route.failures >= self.failures:
            route.open_until = self._clock() + self.reset_s
            route.failures = self.failures - 1  # half open: one more failure reopens it

    async def aclose(self) -> None:
        if self._checker is not None:
            await self._checker.aclose()
        for route in self.routes:
            close = getattr(route.model, "aclose", None)
            if close is not None:
                await close()


def _prefers(route: Route, severity: str | None) -> bool:
    return (
        route.first_for is not None
        and severity is not None
        and rank(severity) >= rank(route.first_for)
    )
