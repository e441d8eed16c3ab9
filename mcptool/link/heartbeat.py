"""Liveness of a link: any frame received is life; silence earns a PING, then a verdict.

Like MQTT keep-alive, but symmetric: each end pings after one silent interval and
declares the peer dead after ``dead_after`` silent intervals, so the time to notice a
dead peer is bounded by ``interval * dead_after`` from the last frame received.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Heartbeat:
    interval: float
    dead_after: int
    last_received: float
    last_ping: float = float("-inf")

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.dead_after < 1:
            raise ValueError("heartbeat needs interval > 0 and dead_after >= 1")

    @property
    def bound(self) -> float:
        """The longest silence tolerated: the dead-peer detection bound."""
        return self.interval * self.dead_after

    def received(self, now: float) -> None:
        self.last_received = now

    def ping_due(self) -> float:
        return max(self.last_received, self.last_ping) + self.interval

    def dead_at(self) -> float:
        return self.last_received + self.bound

    def is_dead(self, now: float) -> bool:
        return now >= self.dead_at()

    def should_ping(self, now: float) -> bool:
        if now >= self.ping_due():
            self.last_ping = now
            return True
        return False

    def next_deadline(self) -> float:
        return min(self.ping_due(), self.dead_at())
