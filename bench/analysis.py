"""Benchmark: the analysis stage (statistics + triggers) and the model calls it saves.

1. Readings per second through windowed statistics and triggers alone (no model, no
   I/O), 100 points (10 devices x 10 points, 1 poll/s each, 10-s windows), side by side
   with a naive baseline measured in the same run: the same windows and the same trigger
   rules, but each window's readings stored and its statistics recomputed at window
   close with the ``statistics`` module (fmean, stdev, linear_regression). Rounds are
   interleaved and the best of each is kept, so a noisy neighbour slows both alike.
2. Model calls: one simulated hour of the same plant, with four scripted faults (a
   boiler drifting hot, a frozen sensor, a pressure dip below its threshold, a device
   going silent), run through the real ``AnalysisPipeline`` (no model attached, so it
   counts the windows it would send). A naive "send every reading" design makes one
   call per poll (all points of a device in one prompt), i.e. 10 per device window.
3. For the record, the cost inside the gateway: spooled poll messages decoded from JSON
   and fed through ``analyse_poll`` to the real pipeline.

The last stdout line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from mcptool.analysis import AnalysisConfig, AnalysisPipeline, Analyzer, ThresholdRule
from mcptool.analysis.polls import analyse_poll
from mcptool.analysis.stats import PointStats, WindowStats
from mcptool.analysis.triggers import TriggerEngine

DEVICES = [f"dev{d}" for d in range(10)]
POINTS = [f"p{p}" for p in range(10)]
POLL_S = 1.0
WINDOW_S = 10.0
T0 = 1_700_000_000.0
POLLS = 10_000  # per device: 1,000,000 readings a round
ROUNDS = 3
LEVELS = [60.0, 2.0, 230.0, 50.0, 5.0, 400.0, 20.0, 1.0, 80.0, 12.0]

CONFIG = AnalysisConfig(
    window_s=WINDOW_S,
    thresholds=(
        ThresholdRule("p0", above=90.0),
        ThresholdRule("p1", below=1.0, severity="critical"),
    ),
    offline_after_s=30.0,
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plant_values(polls: int, seed: int = 1) -> list[dict[str, float]]:
    """Per poll, one dict of 10 values: noisy signals around different levels."""
    rng = random.Random(seed)
    out = []
    for k in range(polls):
        values = {n: lv + rng.gauss(0, lv * 0.01) for n, lv in zip(POINTS, LEVELS, strict=True)}
        if k % 1000 < 10:  # one window in a hundred runs hot: triggers fire in both designs
            values["p0"] += 40.0
        out.append(values)
    return out


# -- 1. throughput -----------------------------------------------------------------
def run_mcptool(values: list[dict[str, float]]) -> tuple[int, int]:
    analyzer = Analyzer(CONFIG)
    observe = analyzer.observe
    t = T0
    for batch in values:
        t += POLL_S
        for device in DEVICES:
            observe(device, t, batch)
    analyzer.tick(t + 2 * WINDOW_S)
    return len(values) * len(DEVICES) * len(POINTS), analyzer.windows_triggered


class NaiveAnalyzer:
    """Stores every reading of the open window; statistics from the stored series at close."""

    def __init__(self, config: AnalysisConfig) -> None:
        self.window_s = config.window_s
        self.engine = TriggerEngine(config)
        self.series: dict[str, dict[str, list[tuple[float, float]]]] = {}
        self.start: dict[str, float] = {}
        self.triggered = 0

    def observe(self, device: str, t: float, values: dict[str, Any]) -> None:
        start = self.start.get(device)
        if start is None or t >= start + self.window_s:
            if start is not None:
                self.close(device, start)
            self.start[device] = math.floor(t / self.window_s) * self.window_s
            self.series[device] = {}
        series = self.series[device]
        for name, value in values.items():
            series.setdefault(name, []).append((t, value))

    def close(self, device: str, start: float) -> None:
        points = {}
        readings = 0
        for name, samples in self.series[device].items():
            ts = [t - start for t, _ in samples]
            vs = [v for _, v in samples]
            readings += len(vs)
            slope = statistics.linear_regression(ts, vs).slope if len(vs) > 1 else None
            points[name] = PointStats(
                name,
                len(vs),
                min(vs),
                max(vs),
                statistics.fmean(vs),
                statistics.stdev(vs) if len(vs) > 1 else 0.0,
                slope,
                vs[-1],
                0,
            )
        window = WindowStats(device, start, start + self.window_s, points, readings)
        events, _ = self.engine.evaluate(window)
        self.triggered += bool(events)


def run_naive(values: list[dict[str, float]]) -> tuple[int, int]:
    naive = NaiveAnalyzer(CONFIG)
    observe = naive.observe
    t = T0
    for batch in values:
        t += POLL_S
        for device in DEVICES:
            observe(device, t, batch)
    for device, start in naive.start.items():
        naive.close(device, start)
    return len(values) * len(DEVICES) * len(POINTS), naive.triggered


def best_rate(run: Callable[[], tuple[int, int]]) -> tuple[float, int]:
    start = time.perf_counter()
    count, triggered = run()
    return count / (time.perf_counter() - start), triggered


def run_gateway_path(values: list[dict[str, float]]) -> tuple[int, int]:
    """What the analysis costs inside the gateway: each spooled poll message is decoded
    from JSON and fed through ``analyse_poll`` to a real pipeline (no model)."""

    async def discard(record: dict[str, Any]) -> None:
        return None

    messages = []
    t = T0
    for batch in values[: len(values) // 4]:
        t += POLL_S
        for device in DEVICES:
            readings = [
                {
                    "device": device,
                    "point": n,
                    "seq": 1,
                    "ts": round(t * 1000),
                    "value": v,
                    "quality": "good",
                    "unit": "°C",
                }
                for n, v in batch.items()
            ]
            message = {
                "node": "bench",
                "device": device,
                "kind": "telemetry",
                "seq": 1,
                "ts": round(t * 1000),
                "readings": readings,
            }
            messages.append(json.dumps(message, separators=(",", ":")).encode())
    pipeline = AnalysisPipeline(CONFIG, sink=discard, model=None, clock=lambda: t)
    start = time.perf_counter()
    for payload in messages:
        analyse_poll(pipeline, json.loads(payload))
    elapsed = time.perf_counter() - start
    count = len(messages) * len(POINTS)
    return count, int(count / elapsed)


# -- 2. model calls saved --------------------------------------------------------------
def scripted_hour() -> dict[str, Any]:
    """One hour of the plant with four faults, through the real pipeline."""
    return asyncio.run(_scripted_hour())


async def _scripted_hour() -> dict[str, Any]:
    rng = random.Random(7)
    records: list[dict[str, Any]] = []

    async def collect(record: dict[str, Any]) -> None:
        records.append(record)

    clock = [T0]
    pipeline = AnalysisPipeline(CONFIG, sink=collect, model=None, clock=lambda: clock[0])
    polls = 3600
    async with pipeline:
        for k in range(polls):
            t = clock[0] = T0 + k * POLL_S
            for device in DEVICES:
                if device == "dev3" and 2400 <= k < 2700:
                    continue  # dev3 silent for five minutes
                values = {
                    n: lv + rng.gauss(0, lv * 0.01) for n, lv in zip(POINTS, LEVELS, strict=True)
                }
                if device == "dev0" and k >= 1800:  # boiler drifting hot after half an hour
                    values["p0"] += (k - 1800) * 0.02
                if device == "dev1" and 1200 <= k < 1500:  # frozen sensor for five minutes
                    values["p2"] = 231.5
                if device == "dev2" and 3000 <= k < 3030:  # pressure dip below threshold
                    values["p1"] = 0.6
                pipeline.observe(device, t, values)
            if k % 5 == 0:
                pipeline.tick(t)
                await asyncio.sleep(0)
        clock[0] = T0 + polls + 2 * WINDOW_S
        pipeline.tick()
        await pipeline.wait_idle()
        counters = pipeline.stats()
    triggers = Counter(r["rule"] for r in records if r["type"] == "trigger")
    calls = Counter(
        f"{r['device']}:{r['rule']}" for r in records if r["type"] == "trigger" and r["model_call"]
    )
    return {
        "device_windows": counters["windows"],
        "windows_triggered": counters["windows_triggered"],
        "model_calls": counters["windows_triggered"] - counters["suppressed"],
        "trigger_events": dict(triggers),
        "events_sent_to_model": dict(calls),
        "polls": polls * len(DEVICES),
    }


def main() -> None:
    log(f"generating {POLLS} polls x {len(DEVICES)} devices x {len(POINTS)} points ...")
    values = plant_values(POLLS)
    best = {"mcptool": 0.0, "naive": 0.0}
    triggered = {}
    for r in range(ROUNDS):
        for name, run in (("mcptool", run_mcptool), ("naive", run_naive)):
            rate, fired = best_rate(lambda run=run: run(values))
            best[name] = max(best[name], rate)
            triggered[name] = fired
            log(f"round {r + 1}: {name:8s} {rate:12,.0f} readings/s ({fired} windows fired)")
    gateway_rate = 0
    for _ in range(ROUNDS):
        _, rate = run_gateway_path(values)
        gateway_rate = max(gateway_rate, rate)
    log(f"in the gateway (JSON decode + pipeline): {gateway_rate:,} readings/s")
    log("simulating one hour with four faults through the pipeline ...")
    hour = scripted_hour()
    polls_per_window = WINDOW_S / POLL_S
    calls_per_window = hour["model_calls"] / hour["device_windows"]
    log(f"hour: {hour}")
    figures = {
        "points": len(DEVICES) * len(POINTS),
        "readings_per_s": round(best["mcptool"]),
        "readings_per_s_naive": round(best["naive"]),
        "vs_naive_readings": round(best["mcptool"] / best["naive"], 2),
        "readings_per_s_gateway_path": gateway_rate,
        "windows_fired_same": triggered["mcptool"] == triggered["naive"],
        "device_windows": hour["device_windows"],
        "windows_triggered": hour["windows_triggered"],
        "model_calls": hour["model_calls"],
        "calls_per_window_naive": polls_per_window,
        "calls_per_window_every_window": 1.0,
        "calls_per_window": round(calls_per_window, 4),
        "vs_naive": round(polls_per_window / calls_per_window, 1) if calls_per_window else None,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
