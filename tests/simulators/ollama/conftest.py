"""A running simulator per test, on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from simulators.ollama import OllamaSimulator


@pytest.fixture
async def sim() -> AsyncIterator[OllamaSimulator]:
    async with OllamaSimulator(models=["llama3.2", "nomic-embed-text"], seed=7) as running:
        yield running
