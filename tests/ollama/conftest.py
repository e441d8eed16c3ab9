"""The Ollama client's tests run against the simulator on an ephemeral loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from mcptool.ollama import OllamaClient, RetryPolicy, Timeouts
from simulators.ollama import OllamaSimulator

FAST_RETRY = RetryPolicy(attempts=3, base=0.001, cap=0.005)


@pytest.fixture
async def sim() -> AsyncIterator[OllamaSimulator]:
    async with OllamaSimulator(models=["llama3.2", "nomic-embed-text"], seed=3) as running:
        yield running


@pytest.fixture
async def client(sim: OllamaSimulator) -> AsyncIterator[OllamaClient]:
    async with OllamaClient(sim.url, retry=FAST_RETRY, timeouts=Timeouts(total=30)) as c:
        yield c


async def poll(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds, failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)
