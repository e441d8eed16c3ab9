"""The in-flight bound: a slot when free, a bounded wait otherwise, backpressure beyond."""

from __future__ import annotations

import asyncio

import pytest

from mcptool.ollama import Admission, OllamaBackpressure


async def test_free_slots_are_taken_without_waiting() -> None:
    admission = Admission(max_in_flight=2, max_waiting=0)
    assert await admission.acquire("u") == 0.0
    assert await admission.acquire("u") == 0.0
    assert admission.in_flight == 2


async def test_callers_beyond_the_bound_wait_then_get_the_freed_slot() -> None:
    admission = Admission(max_in_flight=1, max_waiting=1)
    await admission.acquire("u")
    waiter = asyncio.create_task(admission.acquire("u"))
    await asyncio.sleep(0)
    assert admission.waiting == 1 and not waiter.done()
    admission.release()
    assert await waiter >= 0.0
    assert admission.in_flight == 1 and admission.waiting == 0


async def test_a_full_wait_queue_raises_backpressure() -> None:
    admission = Admission(max_in_flight=1, max_waiting=1)
    await admission.acquire("http://127.0.0.1:11434")
    waiter = asyncio.create_task(admission.acquire("http://127.0.0.1:11434"))
    await asyncio.sleep(0)
    with pytest.raises(OllamaBackpressure) as caught:
        await admission.acquire("http://127.0.0.1:11434")
    assert caught.value.in_flight == 1 and caught.value.waiting == 1
    assert admission.rejected == 1
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert admission.waiting == 0


def test_bounds_are_validated() -> None:
    with pytest.raises(ValueError):
        Admission(max_in_flight=0)
    with pytest.raises(ValueError):
        Admission(max_waiting=-1)
