"""Retry delays: exponential backoff with jitter, after gRPC's connection-backoff.

The project's one backoff: the link's reconnects, the gateway's destinations, the spool's
write retries and the Ollama client's retries all take their delays from it.

Defaults are gRPC's (initial 1 s, multiplier 1.6, jitter +/-20 %, cap 120 s). One
deliberate difference: the jittered delay is clamped to the cap, so "never waits more
than 120 s" holds literally; at the cap jitter still spreads a stampede (96..120 s).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 1.0
    multiplier: float = 1.6
    jitter: float = 0.2
    maximum: float = 120.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempts: int = 0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.multiplier < 1 or not 0 <= self.jitter < 1:
            raise ValueError("backoff needs multiplier >= 1 and 0 <= jitter < 1")

    def base(self, attempts: int | None = None) -> float:
        """The un-jittered delay after ``attempts`` failures (default: those counted)."""
        # Past the cap the exponent no longer matters, and a huge one would overflow a float.
        exponent = min(self.attempts if attempts is None else attempts, 1000)
        try:
            return min(self.initial * self.multiplier**exponent, self.maximum)
        except OverflowError:
            return self.maximum

    def delay(self, attempts: int) -> float:
        """The jittered delay after ``attempts`` failures, for callers that count their own
        (the poller counts per unit); changes nothing here."""
        delay = self.base(attempts) * (1 + self.rng.uniform(-self.jitter, self.jitter))
        return min(delay, self.maximum)

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        delay = self.delay(self.attempts)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0
