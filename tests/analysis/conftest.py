"""Fixtures of the analysis tests: a config with short windows, scripted devices."""

from __future__ import annotations

import asyncio
import math
import socket
import subprocess
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from mcptool.analysis import AnalysisConfig, AnalysisPipeline, Analyzer, OllamaModel, WindowReport
from mcptool.ollama import CircuitBreaker, OllamaClient, RetryPolicy, Timeouts
from simulators.ollama import OllamaSimulator
from tests.conftest import require_program

T0 = 1_700_000_000.0


@pytest.fixture
def config() -> AnalysisConfig:
    return AnalysisConfig(window_s=10.0, min_baseline_windows=5, offline_after_s=30.0)


Feed = Callable[..., list[WindowReport]]


def feed(
    analyzer: Analyzer,
    device: str,
    windows: int,
    value: Callable[[int, int], Any] | dict[str, Callable[[int, int], Any]],
    *,
    start: float = T0,
    per_window: int = 10,
    window_s: float = 10.0,
) -> list[WindowReport]:
    """Poll ``device`` ``per_window`` times in each of ``windows`` windows; ``value(w, i)``
    gives point ``p``'s value (or a dict of such functions per point). Returns the reports
    of the windows closed (the last one is closed with a tick)."""
    reports: list[WindowReport] = []
    points = value if isinstance(value, dict) else {"p": value}
    for w in range(windows):
        for i in range(per_window):
            t = start + w * window_s + i * window_s / per_window
            reports.extend(analyzer.observe(device, t, {n: f(w, i) for n, f in points.items()}))
    reports.extend(analyzer.tick(start + windows * window_s + window_s))
    return reports


def rules(reports: Iterable[WindowReport]) -> list[tuple[int, str]]:
    """(window index from T0, rule) of every event."""
    return [(int((r.window.start - T0) // 10), e.rule) for r in reports for e in r.events]


class Collector:
    """The sink of a pipeline under test: keeps every record, lets a test await some."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    async def __call__(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self._changed.set()

    def of(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records
            if r["type"] == type_ and all(r.get(k) == v for k, v in match.items())
        ]

    async def wait_for(
        self, type_: str, count: int = 1, timeout: float = 15.0, **match: Any
    ) -> list[dict[str, Any]]:
        """Until ``count`` records of ``type_`` (matching ``match``) arrived, or fail."""
        async with asyncio.timeout(timeout):
            while len(self.of(type_, **match)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of(type_, **match)


class Clock:
    """A clock the test sets: the pipeline's ticker must not close windows on its own."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def drive(
    pipeline: AnalysisPipeline,
    clock: Clock,
    device: str,
    windows: Iterable[int],
    value: Callable[[int, int], Any],
    *,
    per_window: int = 5,
) -> None:
    """Poll point ``p`` of ``device`` in the given windows (10 s each from T0)."""
    for w in windows:
        for i in range(per_window):
            t = T0 + w * 10.0 + i * 10.0 / per_window
            clock.now = t
            pipeline.observe(device, t, {"p": value(w, i)})


def shifted(at: set[int], base: float = 60.0, by: float = 20.0) -> Callable[[int, int], float]:
    """A noisy value that jumps by ``by`` in the windows ``at``."""
    return lambda w, i: base + (by if w in at else 0.0) + 0.5 * math.sin(i * 1.3 + w)


@pytest.fixture
async def ollama() -> AsyncIterator[OllamaSimulator]:
    async with OllamaSimulator(models=["llama3.2"], host="127.0.0.1", port=0) as sim:
        yield sim


def fast_model(url: str, config: AnalysisConfig) -> OllamaModel:
    """mcptool's real Ollama client, with one attempt per call and a quick breaker, so a
    test of "Ollama is busy" sees the failure at once and the recovery soon after."""
    client = OllamaClient(
        url,
        timeouts=Timeouts(connect=2.0, total=10.0),
        retry=RetryPolicy(attempts=1),
        breaker=CircuitBreaker(failure_threshold=100, reset_timeout=0.1),
    )
    return OllamaModel(client, config)


@pytest.fixture
def pipeline_config() -> AnalysisConfig:
    return AnalysisConfig(
        window_s=10.0,
        min_baseline_windows=3,
        offline_after_s=None,
        min_call_interval_s=0.0,
        retry_after_s=0.05,
        cooldown_s=0.0,
    )


class Mosquitto:
    """A real broker on a free loopback port, for the MQTT sink tests."""

    def __init__(self, program: str, workdir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        config = workdir / "mosquitto.conf"
        config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.process = subprocess.Popen(
            [program, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    async def ready(self) -> None:
        async with asyncio.timeout(10):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    assert self.process.poll() is None, "mosquitto died"
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                return

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
async def mosquitto(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    broker = Mosquitto(require_program("mosquitto"), tmp_path)
    try:
        await broker.ready()
        yield broker
    finally:
        broker.stop()
