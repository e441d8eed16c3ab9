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

Which model answered is the answer's ``model`` (Ollama reports it), so it is on every
finding; ``answered`` counts answers per route for the metrics.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcptool.analysis.model import AnalysisModel, ModelAnswer, ModelUnavailable

__all__ = ["Route", "RoutedModel"]


@dataclass(slots=True)
class Route:
    """One model behind the router, with its share of first choices and its breaker."""

    name: str
    model: AnalysisModel
    weight: float = 1.0
    fallback: bool = False  # only when the routes before it could not answer
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
    ) -> None:
        if not routes:
            raise ValueError("a router needs at least one route")
        self.routes = list(routes)
        self.name = "+".join(r.name for r in self.routes)
        self.failures = failures
        self.reset_s = reset_s
        self._rng = rng or random.Random()
        self._clock = clock

    def order(self) -> list[Route]:
        """This call's routes: one drawn by weight first, then the rest in order."""
        now = self._clock()
        usable = [r for r in self.routes if r.open_until <= now]
        primary = [r for r in usable if not r.fallback and r.weight > 0]
        if not primary:
            return usable
        first = self._rng.choices(primary, weights=[r.weight for r in primary])[0]
        return [first, *(r for r in usable if r is not first)]

    async def preload(self) -> None:
        for route in self.routes:
            preload = getattr(route.model, "preload", None)
            if preload is not None:
                try:
                    await preload()
                except Exception as exc:  # a hint only, as in the pipeline
                    route.last_error = str(exc)

    async def ask(
        self, messages: Sequence[Mapping[str, str]], schema: Mapping[str, Any]
    ) -> ModelAnswer:
        reasons = []
        for route in self.order():
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
            opened = ", ".join(r.name for r in self.routes)
            raise ModelUnavailable(f"every route's breaker is open ({opened})")
        raise ModelUnavailable("; ".join(reasons))

    def _failed(self, route: Route, reason: str) -> None:
        route.failed += 1
        route.failures += 1
        route.last_error = reason
        if route.failures >= self.failures:
            route.open_until = self._clock() + self.reset_s
            route.failures = self.failures - 1  # half open: one more failure reopens it

    async def aclose(self) -> None:
        for route in self.routes:
            close = getattr(route.model, "aclose", None)
            if close is not None:
                await close()
