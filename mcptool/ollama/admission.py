"""A bound on requests in flight, with a bounded wait queue that refuses instead of piling up.

Ollama runs OLLAMA_NUM_PARALLEL requests per model (1 by default) and queues the rest;
sending more than it runs only moves the queue into the server, where a caller cannot
see or shed it. So the client keeps the queue itself: ``max_in_flight`` requests out
(sized to the server's parallelism), at most ``max_waiting`` callers waiting, and a
typed :class:`~mcptool.ollama.errors.OllamaBackpressure` for the next one.
"""

from __future__ import annotations

import asyncio
import time

from mcptool.ollama.errors import OllamaBackpressure


class Admission:
    def __init__(self, max_in_flight: int = 1, max_waiting: int = 64) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if max_waiting < 0:
            raise ValueError("max_waiting must be at least 0")
        self.max_in_flight = max_in_flight
        self.max_waiting = max_waiting
        self.in_flight = 0
        self.waiting = 0
        self.rejected = 0
        self._slots = asyncio.Semaphore(max_in_flight)

    async def acquire(self, url: str) -> float:
        """Take a slot; return the seconds waited. Raises OllamaBackpressure when full."""
        if not self._slots.locked():
            await self._slots.acquire()  # free slot: returns without suspending
            self.in_flight += 1
            return 0.0
        if self.waiting >= self.max_waiting:
            self.rejected += 1
            raise OllamaBackpressure(url, self.in_flight, self.waiting)
        self.waiting += 1
        started = time.perf_counter()
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        return time.perf_counter() - started

    def release(self) -> None:
        self.in_flight -= 1
        self._slots.release()
