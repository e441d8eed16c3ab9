"""Benchmark: what the analysis' findings are worth, per model, on labelled windows.

A technician acts on a finding at 3 a.m.; the engineer who sized the edge box needs to
know how often a finding is usable. Each scenario is one device: eight windows of normal
operation (its baseline, fed to the analyser only), then one labelled window (a boiler
past its critical threshold, a stuck sensor, a phase that sags, a drift, a device gone
offline, a healthy device on ``every_window``, ...) with the severity a technician would
give it and the points it concerns. The labelled window goes through the whole
``AnalysisPipeline``: prompt, schema, model call, repair, severity floor, grounding
check. Per model:

- ``valid``: share of windows that got a model finding (not an answer still invalid
  after one repair);
- ``severity_ok``: share at the expected severity or the one above, after the floor;
  ``severity_ok_raw`` the same for the model's own rating (the floor's baseline, same run);
- ``grounded``: share of findings whose every quoted number is in the window;
- ``points_ok``: share of findings that name every expected point;
- ``s_per_finding``: mean wall time of a finding (repairs included).

Models: the Ollama simulator (schema-shaped text, the floor of quality, always run) and
the embedded model (``local-model`` extra) when installed; ``--ollama URL --model NAME``
adds a real Ollama. The last stdout line is one JSON object.

    .venv/bin/python bench/findings.py [--only simulator] [--ollama URL --model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mcptool.analysis import AnalysisConfig, AnalysisPipeline, ThresholdRule
from mcptool.analysis.analyzer import PointInfo
from mcptool.analysis.findings import rank

T0 = 1_700_000_000.0
WINDOW_S = 10.0
BASELINE = 8
Series = Callable[[float], float]  # seconds since the window's start -> value


def noise(level: float, sd: float, seed: int = 0) -> Series:
    return lambda t: level + sd * math.sin(1.7 * t + seed) * math.cos(0.3 * t + 2 * seed)


def ramp(start: float, end: float) -> Series:
    return lambda t: start + (end - start) * (t % WINDOW_S) / WINDOW_S


@dataclass
class Scenario:
    name: str
    device: str
    units: dict[str, str]
    normal: dict[str, Series]
    window: dict[str, Series]  # the labelled window; missing points keep their normal
    expected: str
    points: tuple[str, ...]
    thresholds: tuple[ThresholdRule, ...] = ()
    every_window: bool = False
    offline: bool = False
    quantum: dict[str, float] = field(default_factory=dict)


def T(  # a rule, short: the scenarios below read as a table
    point: str, above: float | None = None, below: float | None = None, sev: str = "warning"
) -> ThresholdRule:
    return ThresholdRule(point=point, above=above, below=below, severity=sev)  # type: ignore[arg-type]


BOILER = {"supply_temp": "°C", "return_temp": "°C", "pressure": "bar"}
METER = {"current_l1": "A", "current_l2": "A", "current_l3": "A", "voltage_l1": "V"}
PUMP = {"flow": "m³/h", "pressure": "bar", "motor_temp": "°C"}


def boiler_normal() -> dict[str, Series]:
    return {
        "supply_temp": noise(72, 0.6),
        "return_temp": noise(55, 0.5, 1),
        "pressure": noise(1.8, 0.03, 2),
    }


def meter_normal() -> dict[str, Series]:
    return {
        "current_l1": noise(120, 2, 1),
        "current_l2": noise(121, 2, 2),
        "current_l3": noise(119, 2, 3),
        "voltage_l1": noise(231, 1, 4),
    }


def pump_normal() -> dict[str, Series]:
    return {
        "flow": noise(42, 0.8),
        "pressure": noise(3.2, 0.05, 1),
        "motor_temp": noise(61, 0.7, 2),
    }


BOILER_T = (
    T("supply_temp", above=85, sev="critical"),
    T("pressure", below=1.0, sev="critical"),
    T("pressure", below=1.3),
)
METER_T = (
    T("voltage_l1", above=253),
    T("voltage_l1", below=207),
    T("current_l*", above=170, sev="critical"),
)
PUMP_T = (
    T("motor_temp", above=110, sev="critical"),
    T("motor_temp", above=90),
    T("pressure", above=6),
)


def scenarios() -> list[Scenario]:
    b, m, p = BOILER, METER, PUMP
    return [
        Scenario(
            "overheating past critical",
            "boiler-1",
            b,
            boiler_normal(),
            {"supply_temp": ramp(80, 97)},
            "critical",
            ("supply_temp",),
            BOILER_T,
        ),
        Scenario(
            "pressure loss past critical",
            "boiler-2",
            b,
            boiler_normal(),
            {"pressure": ramp(1.7, 0.8)},
            "critical",
            ("pressure",),
            BOILER_T,
        ),
        Scenario(
            "pressure low warning",
            "boiler-3",
            b,
            boiler_normal(),
            {"pressure": noise(1.25, 0.02)},
            "warning",
            ("pressure",),
            BOILER_T,
        ),
        Scenario(
            "supply temperature stuck",
            "boiler-4",
            b,
            boiler_normal(),
            {"supply_temp": lambda t: 71.5},
            "warning",
            ("supply_temp",),
            BOILER_T,
        ),
        Scenario(
            "return temperature drifts up",
            "boiler-5",
            b,
            boiler_normal(),
            {"return_temp": noise(63, 0.5)},
            "warning",
            ("return_temp",),
            BOILER_T,
        ),
        Scenario(
            "boiler offline",
            "boiler-6",
            b,
            boiler_normal(),
            {},
            "critical",
            (),
            BOILER_T,
            offline=True,
        ),
        Scenario(
            "healthy boiler",
            "boiler-7",
            b,
            boiler_normal(),
            {},
            "normal",
            (),
            BOILER_T,
            every_window=True,
        ),
        Scenario(
            "phase l3 sags (imbalance)",
            "meter-1",
            m,
            meter_normal(),
            {"current_l3": noise(80, 2)},
            "warning",
            ("current_l3",),
            METER_T,
        ),
        Scenario(
            "overcurrent past critical",
            "meter-2",
            m,
            meter_normal(),
            {"current_l1": ramp(150, 185)},
            "critical",
            ("current_l1",),
            METER_T,
        ),
        Scenario(
            "overvoltage",
            "meter-3",
            m,
            meter_normal(),
            {"voltage_l1": noise(257, 1)},
            "warning",
            ("voltage_l1",),
            METER_T,
        ),
        Scenario(
            "undervoltage",
            "meter-4",
            m,
            meter_normal(),
            {"voltage_l1": noise(203, 1)},
            "warning",
            ("voltage_l1",),
            METER_T,
        ),
        Scenario(
            "current sensor flat-lines",
            "meter-5",
            m,
            meter_normal(),
            {"current_l2": lambda t: 121.0},
            "warning",
            ("current_l2",),
            METER_T,
        ),
        Scenario(
            "meter offline", "meter-6", m, meter_normal(), {}, "critical", (), METER_T, offline=True
        ),
        Scenario(
            "healthy meter",
            "meter-7",
            m,
            meter_normal(),
            {},
            "normal",
            (),
            METER_T,
            every_window=True,
        ),
        Scenario(
            "motor overheating past critical",
            "pump-1",
            p,
            pump_normal(),
            {"motor_temp": ramp(100, 118)},
            "critical",
            ("motor_temp",),
            PUMP_T,
        ),
        Scenario(
            "motor warm",
            "pump-2",
            p,
            pump_normal(),
            {"motor_temp": noise(94, 0.5)},
            "warning",
            ("motor_temp",),
            PUMP_T,
        ),
        Scenario(
            "flow drops (blocked suction)",
            "pump-3",
            p,
            pump_normal(),
            {"flow": noise(25, 0.8)},
            "warning",
            ("flow",),
            PUMP_T,
        ),
        Scenario(
            "discharge pressure high",
            "pump-4",
            p,
            pump_normal(),
            {"pressure": noise(6.4, 0.05)},
            "warning",
            ("pressure",),
            PUMP_T,
        ),
        Scenario(
            "flow sensor stuck",
            "pump-5",
            p,
            pump_normal(),
            {"flow": lambda t: 42.0},
            "warning",
            ("flow",),
            PUMP_T,
        ),
        Scenario(
            "pump offline", "pump-6", p, pump_normal(), {}, "critical", (), PUMP_T, offline=True
        ),
        Scenario(
            "healthy pump", "pump-7", p, pump_normal(), {}, "normal", (), PUMP_T, every_window=True
        ),
        Scenario(
            "healthy pump, other duty",
            "pump-8",
            p,
            {**pump_normal(), "flow": noise(55, 0.8)},
            {},
            "normal",
            (),
            PUMP_T,
            every_window=True,
        ),
    ]


def readings(
    s: Scenario, w: int, series: dict[str, Series]
) -> Iterator[tuple[float, dict[str, float]]]:
    for i in range(10):
        t = i * WINDOW_S / 10
        yield T0 + w * WINDOW_S + t, {k: round(f(t + w * WINDOW_S), 3) for k, f in series.items()}


class Collector:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    async def __call__(self, record: dict[str, Any]) -> None:
        self.records.append(record)


async def run_scenario(s: Scenario, model: Any) -> dict[str, Any]:
    config = AnalysisConfig(
        window_s=WINDOW_S,
        min_baseline_windows=5,
        thresholds=s.thresholds,
        every_window=s.every_window,
        offline_after_s=25.0,
        cooldown_s=0.0,
        min_call_interval_s=0.0,
        request_timeout_s=600.0,
        statistics_findings=False,
    )
    sink = Collector()
    clock = lambda: T0 + 1e6  # noqa: E731  (the pipeline is driven with explicit times)
    pipeline = AnalysisPipeline(config, sink=sink, model=model, clock=clock)
    pipeline.add_device(s.device, [PointInfo(n, u) for n, u in s.units.items()])
    for w in range(BASELINE):  # the baseline: to the analyser only, no model call
        for t, values in readings(s, w, s.normal):
            pipeline.analyzer.observe(s.device, t, values)
    labelled = T0 + BASELINE * WINDOW_S
    started = time.perf_counter()
    async with pipeline:
        if s.offline:
            pipeline.tick(labelled + 30.0)
        else:
            for t, values in readings(s, BASELINE, {**s.normal, **s.window}):
                pipeline.observe(s.device, t, values)
            pipeline.tick(labelled + WINDOW_S + 1.0)
        await pipeline.wait_idle()
    wall = time.perf_counter() - started
    findings = [r for r in sink.records if r["type"] == "finding" and r["source"] == "model"]
    triggers = [r for r in sink.records if r["type"] == "trigger"]
    if not findings:
        return {
            "name": s.name,
            "valid": False,
            "triggers": [t["rule"] for t in triggers],
            "s": wall,
        }
    f = findings[-1]
    raw = f.get("model_severity") or f["severity"]
    ok = lambda sev: 0 <= rank(sev) - rank(s.expected) <= 1  # noqa: E731
    return {
        "name": s.name,
        "valid": True,
        "severity": f["severity"],
        "raw": raw,
        "expected": s.expected,
        "severity_ok": ok(f["severity"]),
        "severity_ok_raw": ok(raw),
        "grounded": not f.get("ungrounded"),
        "points_ok": set(s.points) <= set(f["points"]),
        "repaired": f["repaired"],
        "triggers": [t["rule"] for t in triggers],
        "s": wall,
        "summary": f["summary"],
        "ungrounded": f.get("ungrounded"),
    }


def share(rows: list[dict[str, Any]], key: str, among_valid: bool = True) -> float:
    pool = [r for r in rows if r["valid"]] if among_valid else rows
    return round(sum(bool(r.get(key)) for r in pool) / len(pool), 3) if pool else 0.0


async def run_model(label: str, model: Any) -> dict[str, Any]:
    rows = []
    for s in scenarios():
        row = await run_scenario(s, model)
        rows.append(row)
        print(f"{label}: {json.dumps(row, ensure_ascii=False)}", file=sys.stderr, flush=True)
    valid = [r for r in rows if r["valid"]]
    return {
        "windows": len(rows),
        "valid": share(rows, "valid", among_valid=False),
        "severity_ok": share(rows, "severity_ok", among_valid=False),
        "severity_ok_raw": share(rows, "severity_ok_raw", among_valid=False),
        "grounded": share(rows, "grounded"),
        "points_ok": share(rows, "points_ok"),
        "repaired": share(rows, "repaired"),
        "s_per_finding": round(sum(r["s"] for r in valid) / len(valid), 2) if valid else None,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=("simulator", "embedded"), default=None)
    parser.add_argument("--ollama", default=None)
    parser.add_argument("--model", default="llama3.2")
    args = parser.parse_args()
    from mcptool.analysis import OllamaModel
    from simulators.ollama import OllamaSimulator

    out: dict[str, Any] = {}
    base = AnalysisConfig(request_timeout_s=600.0)
    if args.only in (None, "simulator"):
        async with OllamaSimulator(models=["simulator"], port=0) as sim:
            model = OllamaModel.connect(sim.url, AnalysisConfig(model="simulator"))
            out["simulator"] = await run_model("simulator", model)
            await model.aclose()
    if args.only in (None, "embedded"):
        from mcptool.analysis.embedded import EmbeddedModel, embedded_available

        missing = embedded_available()
        if missing is None:
            embedded = EmbeddedModel(base, threads=2)
            await embedded.start()
            result = await run_model("embedded", embedded)
            out[embedded.name] = {**result, "load_s": round(embedded.load_s or 0, 2)}
            await embedded.aclose()
        else:
            print(f"embedded model skipped: {missing}", file=sys.stderr)
    if args.ollama:
        from dataclasses import replace

        model = OllamaModel.connect(args.ollama, replace(base, model=args.model))
        out[args.model] = await run_model(args.model, model)
        await model.aclose()
    first = next(iter(out.values()), {})
    for figures in out.values():
        if figures is not first and first.get("severity_ok"):
            figures["severity_ok_vs_simulator"] = round(
                figures["severity_ok"] / first["severity_ok"], 3
            )
        if figures.get("severity_ok_raw"):
            figures["floor_gain"] = round(figures["severity_ok"] / figures["severity_ok_raw"], 3)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
