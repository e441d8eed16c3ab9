"""Ollama's scheduling: parallel slots per model, one wait queue, loads and keep-alive.

As Ollama does it (FIELD-NOTES): ``parallel`` requests per model at a time
(OLLAMA_NUM_PARALLEL); a request that cannot start at once waits unless ``queue``
requests wait already, then 503 "server busy" (OLLAMA_MAX_QUEUE); the first request to a
cold model loads it and concurrent requests wait for that same load; a client leaving
aborts a load it started; a different ``num_ctx`` (or ``num_thread``) reloads; the
model stays loaded for
``keep_alive`` after its last use (0: unload after the request, negative: forever).

What a load is belongs to the server (a sleep in the simulator, a GGUF into memory in
``mcptool model serve``): it is passed in as ``loader(shape)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from mcptool.serving.wire import BUSY_MESSAGE, ApiError

M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class Shape:
    """What a load fixes: the context length and CPU threads (0: the server's default)."""

    num_ctx: int = 0
    num_thread: int = 0

    def fits(self, loaded: Shape) -> bool:
        """Whether a model loaded as ``loaded`` serves a request that asks for this."""
        return all(
            not asked or not have or asked == have
            for asked, have in (
                (self.num_ctx, loaded.num_ctx),
                (self.num_thread, loaded.num_thread),
            )
        )


Loader = Callable[[Shape], Awaitable[Shape]]
"""Loads the model as asked (zeros: the server's defaults); returns the shape it got."""


@dataclass
class SchedulingCounters:
    """What scheduling did: tests assert on these instead of on timing."""

    loads: int = 0
    loads_aborted: int = 0
    unloads: int = 0
    rejected_busy: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    waiting: int = 0
    max_waiting: int = 0

    def reset(self) -> None:
        fresh = type(self)()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))


@dataclass
class ModelSlots(Generic[M]):
    """One model's place in the scheduler: its run slots, its load, its expiry."""

    model: M
    slots: asyncio.Semaphore
    load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    expires: float | None = None  # loop time; None: not loaded; math.inf: forever
    expires_wall: float = 0.0
    shape: Shape = Shape()
    running: int = 0  # requests holding one of its slots

    def loaded(self, now: float) -> bool:
        return self.expires is not None and self.expires > now


class Ticket:
    """A place in the wait queue, left exactly once (when a slot is taken or on failure)."""

    __slots__ = ("_counters", "left")

    def __init__(self, counters: SchedulingCounters) -> None:
        self._counters = counters
        self.left = False

    def leave(self) -> None:
        if not self.left:
            self.left = True
            self._counters.waiting -= 1


class Scheduler:
    """Admission, loads and slots for every model of one server."""

    def __init__(
        self,
        counters: SchedulingCounters,
        *,
        parallel: int = 1,
        queue: int = 512,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        if queue < 0:
            raise ValueError("queue must be at least 0")
        self.counters = counters
        self.parallel = parallel
        self.queue = queue
        self._clock = clock

    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def slots_for(self, model: M) -> ModelSlots[M]:
        return ModelSlots(model, asyncio.Semaphore(self.parallel))

    def admit(self, slots: ModelSlots[M]) -> Ticket:
        """A place in the queue, or 503 when the model is busy and the queue is full."""
        if slots.slots.locked() and self.counters.waiting >= self.queue:
            self.counters.rejected_busy += 1
            raise ApiError(503, BUSY_MESSAGE)
        self.counters.waiting += 1
        self.counters.max_waiting = max(self.counters.max_waiting, self.counters.waiting)
        return Ticket(self.counters)

    async def load(
        self, slots: ModelSlots[M], keep_alive: float, shape: Shape, loader: Loader
    ) -> float:
        """Make sure the model is loaded; return the seconds this request waited for a load
        (its own or a concurrent one's), 0 if the model was warm."""
        if self._warm(slots, shape):
            return 0.0
        started = self.now()
        async with slots.load_lock:
            if self._warm(slots, shape):
                return self.now() - started  # waited for another request's load
            try:
                loaded = await loader(shape)
            except asyncio.CancelledError:
                self.counters.loads_aborted += 1
                raise
            self.counters.loads += 1
            slots.shape = loaded
            self.touch(slots, keep_alive)
            return max(self.now() - started, 1e-9)

    def _warm(self, slots: ModelSlots[M], shape: Shape) -> bool:
        return slots.loaded(self.now()) and shape.fits(slots.shape)

    def touch(self, slots: ModelSlots[M], keep_alive: float) -> None:
        """Keep the model loaded for ``keep_alive`` seconds from now."""
        if keep_alive == math.inf:
            slots.expires = math.inf
        else:
            slots.expires = self.now() + keep_alive
            slots.expires_wall = time.time() + keep_alive

    def unload(self, slots: ModelSlots[M]) -> None:
        if slots.expires is not None:
            self.counters.unloads += 1
        slots.expires = None

    async def acquire(self, slots: ModelSlots[M], ticket: Ticket) -> None:
        """Wait for a run slot; the ticket leaves the queue whatever happens."""
        try:
            await slots.slots.acquire()
        finally:
            ticket.leave()
        slots.running += 1
        self.counters.in_flight += 1
        self.counters.max_in_flight = max(self.counters.max_in_flight, self.counters.in_flight)

    def release(self, slots: ModelSlots[M]) -> None:
        self.counters.in_flight -= 1
        slots.running -= 1
        slots.slots.release()

    @contextlib.asynccontextmanager
    async def running(self, slots: ModelSlots[M], ticket: Ticket) -> AsyncIterator[None]:
        await self.acquire(slots, ticket)
        try:
            yield
        finally:
            self.release(slots)
