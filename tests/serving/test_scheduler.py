"""The scheduler as Ollama schedules: slots, one bounded wait queue, loads, keep-alive.

A fake clock drives expiry; loads are futures the test completes, so nothing sleeps.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from mcptool.serving import BUSY_MESSAGE, ApiError, Scheduler, SchedulingCounters, Shape


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scheduler(parallel: int = 1, queue: int = 1) -> tuple[Scheduler, Clock]:
    clock = Clock()
    return Scheduler(SchedulingCounters(), parallel=parallel, queue=queue, clock=clock), clock


async def test_a_request_that_can_run_at_once_never_counts_against_the_queue() -> None:
    sched, _ = scheduler(queue=0)
    slots = sched.slots_for("m")
    ticket = sched.admit(slots)
    async with sched.running(slots, ticket):
        assert sched.counters.in_flight == 1
    assert sched.counters.waiting == 0


async def test_a_full_queue_answers_503_server_busy() -> None:
    sched, _ = scheduler(parallel=1, queue=1)
    slots = sched.slots_for("m")
    await sched.acquire(slots, sched.admit(slots))  # the one slot is taken
    waiting = sched.admit(slots)  # the one place in the queue
    with pytest.raises(ApiError) as busy:
        sched.admit(slots)
    assert (busy.value.status, busy.value.message) == (503, BUSY_MESSAGE)
    assert sched.counters.rejected_busy == 1
    waiting.leave()
    waiting.leave()  # leaving twice leaves once
    assert sched.counters.waiting == 0
    sched.admit(slots)  # room again


async def test_parallel_slots_run_that_many_at_once() -> None:
    sched, _ = scheduler(parallel=2, queue=0)
    slots = sched.slots_for("m")
    await sched.acquire(slots, sched.admit(slots))
    await sched.acquire(slots, sched.admit(slots))
    assert sched.counters.max_in_flight == 2
    with pytest.raises(ApiError):
        sched.admit(slots)
    sched.release(slots)
    sched.admit(slots)


async def test_concurrent_requests_wait_for_one_load() -> None:
    sched, _ = scheduler()
    slots = sched.slots_for("m")
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    calls: list[Shape] = []

    async def loader(shape: Shape) -> Shape:
        calls.append(shape)
        await gate
        return Shape(2048, 2)

    first = asyncio.create_task(sched.load(slots, 300, Shape(), loader))
    second = asyncio.create_task(sched.load(slots, 300, Shape(), loader))
    await asyncio.sleep(0)
    gate.set_result(None)
    assert (await first) > 0 and (await second) >= 0
    assert calls == [Shape()] and sched.counters.loads == 1
    assert slots.shape == Shape(2048, 2)
    assert await sched.load(slots, 300, Shape(), loader) == 0.0  # warm


async def test_another_num_ctx_or_num_thread_reloads_and_the_same_one_does_not() -> None:
    sched, _ = scheduler()
    slots = sched.slots_for("m")

    async def loader(shape: Shape) -> Shape:
        return Shape(shape.num_ctx or 2048, shape.num_thread or 2)

    await sched.load(slots, 300, Shape(), loader)
    assert await sched.load(slots, 300, Shape(2048, 2), loader) == 0.0
    await sched.load(slots, 300, Shape(4096), loader)
    assert (sched.counters.loads, slots.shape) == (2, Shape(4096, 2))
    await sched.load(slots, 300, Shape(0, 1), loader)
    assert (sched.counters.loads, slots.shape) == (3, Shape(2048, 1))


async def test_keep_alive_expires_and_negative_keeps_it_forever() -> None:
    sched, clock = scheduler()
    slots = sched.slots_for("m")

    async def loader(shape: Shape) -> Shape:
        return Shape(2048)

    await sched.load(slots, 10, Shape(), loader)
    clock.now += 9.9
    assert slots.loaded(sched.now())
    clock.now += 0.2
    assert not slots.loaded(sched.now())
    await sched.load(slots, math.inf, Shape(), loader)
    clock.now += 1e9
    assert slots.loaded(sched.now()) and sched.counters.loads == 2
    sched.unload(slots)
    assert not slots.loaded(sched.now()) and sched.counters.unloads == 1


async def test_a_load_whose_client_leaves_is_aborted_and_not_counted_as_loaded() -> None:
    sched, _ = scheduler()
    slots = sched.slots_for("m")

    async def forever(shape: Shape) -> Shape:
        await asyncio.Event().wait()
        return shape

    task = asyncio.create_task(sched.load(slots, 300, Shape(), forever))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (sched.counters.loads, sched.counters.loads_aborted) == (0, 1)
    assert not slots.loaded(sched.now())
