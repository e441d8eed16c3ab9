"""Health of the routes' endpoints, checked on a timer: the sans-IO core.

A route's breaker learns only from the windows it fails, so a dead box on another host
costs a window its connect timeout before anything is known. The checks learn it first:
every ``interval_s`` each endpoint is asked which models it has (``GET /api/tags``, by
the driver in ``routing``), and each route on it is healthy when the endpoint answered
and has the route's model. A route found unhealthy is skipped by the router; found
healthy again, it rejoins.

This module decides, and nothing else: time and check outcomes in, changes out. No
clock, no socket, no event loop (tested with a fake clock); ``routing.HealthChecker``
puts it on asyncio and the Ollama client.

- The first check of a route decides at once (the start-up warning needs a verdict).
- After that, ``fall`` failed checks in a row make a healthy route unhealthy (one lost
  answer on a busy network is not an outage: the breaker covers the windows meanwhile),
  and ``rise`` good ones make an unhealthy route healthy again.
- A route not checked yet is usable: it is not skipped before anything is known.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["HEALTHY", "UNHEALTHY", "UNKNOWN", "HealthBook", "HealthChange", "RouteHealth"]

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
UNKNOWN = "unknown"  # not checked yet (or not checkable: the embedded model)


@dataclass(slots=True)
class RouteHealth:
    """What the checks know of one route."""

    route: str
    endpoint: str
    model: str
    state: str = UNKNOWN
    reason: str = ""  # why it is unhealthy, with the fix
    checked_at: float | None = None
    fails: int = 0  # failed checks in a row
    passes: int = 0  # good checks in a row

    @property
    def usable(self) -> bool:
        return self.state != UNHEALTHY


@dataclass(frozen=True, slots=True)
class HealthChange:
    """A route became healthy or unhealthy; ``first`` when it is its first verdict."""

    route: str
    endpoint: str
    model: str
    healthy: bool
    reason: str
    first: bool


class HealthBook:
    """Routes by endpoint, when each endpoint is due a check, and each route's verdict."""

    def __init__(self, interval_s: float, *, fall: int = 2, rise: int = 1) -> None:
        if interval_s <= 0 or fall < 1 or rise < 1:
            raise ValueError("interval_s must be above 0, fall and rise at least 1")
        self.interval_s = interval_s
        self.fall = fall
        self.rise = rise
        self.routes: dict[str, RouteHealth] = {}
        self._due: dict[str, float] = {}  # endpoint -> when its next check is due
        self._checking: set[str] = set()

    def add(self, route: str, endpoint: str, model: str) -> None:
        """A route to check (several routes may share an endpoint: one check serves all)."""
        self.routes[route] = RouteHealth(route, endpoint, model)
        self._due.setdefault(endpoint, -float("inf"))

    @property
    def endpoints(self) -> list[str]:
        return list(self._due)

    def usable(self, route: str) -> bool:
        health = self.routes.get(route)
        return health is None or health.usable

    def due(self, now: float) -> list[str]:
        """Endpoints to check now; each is not due again until its outcome is observed
        (a check slower than the interval does not pile up a second one)."""
        ready = [e for e, at in self._due.items() if at <= now and e not in self._checking]
        self._checking.update(ready)
        return ready

    def next_due(self) -> float | None:
        """When the next check falls due (None: every endpoint is being checked)."""
        waiting = [at for e, at in self._due.items() if e not in self._checking]
        return min(waiting) if waiting else None

    def observe(
        self,
        endpoint: str,
        now: float,
        *,
        models: Collection[str] = (),
        error: str | None = None,
        serves: Collection[str] | None = None,
    ) -> list[HealthChange]:
        """The outcome of a check of ``endpoint``: ``error`` (one line naming the endpoint
        and the fix) when it did not answer as an Ollama does, else ``models``, the names
        of the routes' models it has. ``serves``: every model of an endpoint that cannot
        pull one (mcptool's own servers), None for an Ollama. Returns the routes whose
        verdict changed."""
        self._checking.discard(endpoint)
        self._due[endpoint] = now + self.interval_s
        changes = []
        for health in self.routes.values():
            if health.endpoint != endpoint:
                continue
            if error is not None:
                reason = error  # the client's own line: it names the endpoint and the fix
            elif health.model not in models and serves is not None:
                reason = (
                    f"model {health.model} is not served at {endpoint}, which serves only"
                    f" {', '.join(serves) or 'nothing'}: name one of those in the route, or"
                    f" serve {health.model} there (`mcptool model serve --model FILE.gguf"
                    f" --name {health.model}`)"
                )
            elif health.model not in models:
                reason = (
                    f"model {health.model} is not pulled at {endpoint}:"
                    f" run `ollama pull {health.model}` there"
                )
            else:
                reason = ""
            change = self._verdict(health, now, reason)
            if change is not None:
                changes.append(change)
        return changes

    def _verdict(self, health: RouteHealth, now: float, reason: str) -> HealthChange | None:
        first = health.checked_at is None
        health.checked_at = now
        if reason:
            health.fails += 1
            health.passes = 0
            if health.state == UNHEALTHY:
                health.reason = reason  # the latest cause, for status
                return None
            if not first and health.fails < self.fall:
                return None  # still healthy: one lost check is not an outage
            health.state, health.reason = UNHEALTHY, reason
        else:
            health.passes += 1
            health.fails = 0
            if health.state == HEALTHY:
                return None
            if health.state == UNHEALTHY and health.passes < self.rise:
                return None
            health.state, health.reason = HEALTHY, ""
        return HealthChange(
            health.route, health.endpoint, health.model, health.state == HEALTHY, reason, first
        )
