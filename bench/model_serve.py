"""Benchmark: ``mcptool model serve`` with the packaged model, on the project's prompts.

What an engineer sizing an edge box asks: how long the model takes to load, how much
memory it holds, how many tokens a second it makes, and how long one finding takes with
the analysis' own prompt (``mcptool.analysis.prompting``), schema (``finding_schema``)
and answer check (``parse_answer``), at temperature 0 as the analysis asks.

Windows: five scenario devices built with the analysis' own ``DeviceWindow`` and
``TriggerEngine`` (an overheating boiler past a critical threshold, a stuck sensor, a
pressure dip, a slow drift, a healthy device analysed on every window).

Baseline, measured in the same run, interleaved: the same requests straight into llama.cpp
in-process (``xllamacpp``, the same GGUF, threads, context and JSON schema; no HTTP, no
Ollama API, no queue), so ``serve_vs_direct`` is what the server layer costs per finding.
Needs the ``local-model`` extra. The last stdout line is one JSON object.

    .venv/bin/python bench/model_serve.py [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mcptool.analysis import AnalysisConfig, ThresholdRule
from mcptool.analysis.analyzer import PointInfo
from mcptool.analysis.findings import InvalidAnswer, finding_schema, parse_answer
from mcptool.analysis.prompting import Prompts
from mcptool.analysis.stats import DeviceWindow
from mcptool.analysis.triggers import TriggerEngine
from mcptool.ollama import OllamaClient, RetryPolicy, Timeouts
from mcptool.serving.generator import Prompt
from mcptool.serving.llama import import_runtime, request_body
from mcptool.serving.weights import QWEN_CODER_05B, packaged_model_path

T0 = 1_700_000_000.0
CTX = 4096
THRESHOLDS = (
    ThresholdRule(point="water_temp", above=95.0, severity="critical"),
    ThresholdRule(point="pressure", below=1.5),
    ThresholdRule(point="current_l1", above=160.0),
)
UNITS = {
    "water_temp": "°C",
    "pressure": "bar",
    "flow": "m³/h",
    "current_l1": "A",
    "voltage_l1": "V",
    "level": "%",
}


def scenario(device: str, series: dict[str, list[float]], every: bool = False) -> dict[str, Any]:
    window = DeviceWindow(device, 10.0, 5.0, units={k: UNITS[k] for k in series})
    for i in range(10):
        window.add(T0 + i, {name: values[i] for name, values in series.items()})
    stats = window.close()
    engine = TriggerEngine(AnalysisConfig(window_s=10.0, thresholds=THRESHOLDS, every_window=every))
    events, usual = engine.evaluate(stats)
    info = {name: PointInfo(name, UNITS[name]) for name in series}
    return {"window": stats, "events": events, "usual": usual, "info": info}


def windows() -> list[dict[str, Any]]:
    ramp = [90.0 + 1.0 * i for i in range(10)]
    return [
        scenario("boiler-1", {"water_temp": ramp, "pressure": [2.1] * 10}),
        scenario("pump-3", {"flow": [12.4] * 10, "pressure": [2.0 + 0.01 * i for i in range(10)]}),
        scenario("boiler-2", {"water_temp": [70.0] * 10, "pressure": [2.0] * 5 + [1.2] * 5}),
        scenario(
            "meter-7",
            {"current_l1": [150.0 + 1.5 * i for i in range(10)], "voltage_l1": [230.0] * 10},
        ),
        scenario("tank-2", {"level": [55.0 + 0.1 * (i % 3) for i in range(10)]}, every=True),
    ]


def requests(prompts: Prompts) -> list[tuple[list[dict[str, str]], dict[str, Any]]]:
    out = []
    for w in windows():
        user = prompts.window_prompt(w["window"], w["events"], w["info"], w["usual"])
        messages = [
            {"role": "system", "content": prompts.system},
            {"role": "user", "content": user},
        ]
        out.append((messages, finding_schema(list(w["info"]))))
    return out


def rss_mb(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return int(fields["VmRSS"][0]) / 1024, int(fields["VmHWM"][0]) / 1024


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def via_server(url: str, reqs: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    async with OllamaClient(url, retry=RetryPolicy(attempts=1), timeouts=Timeouts(total=600)) as c:
        for messages, schema in reqs:
            started = time.perf_counter()
            result = await c.chat(
                QWEN_CODER_05B.name, messages, extra={"format": schema}, options=options
            )
            wall = time.perf_counter() - started
            results.append(
                judge(
                    result.text,
                    schema,
                    wall,
                    result.metrics.eval_count,
                    result.metrics.eval_s,
                    result.metrics.prompt_eval_count,
                    result.metrics.prompt_eval_s,
                )
            )
    return results


def via_direct(server: Any, reqs: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for messages, schema in reqs:
        body = request_body(Prompt(messages=messages, format=schema, options=options))
        body["stream"] = False
        started = time.perf_counter()
        answer = server.handle_chat_completions(body)
        wall = time.perf_counter() - started
        t = answer.get("timings", {})
        results.append(
            judge(
                answer["choices"][0]["message"]["content"],
                schema,
                wall,
                t.get("predicted_n", 0),
                t.get("predicted_ms", 0) / 1000,
                t.get("prompt_n", 0) + t.get("cache_n", 0),
                t.get("prompt_ms", 0) / 1000,
            )
        )
    return results


def judge(
    text: str,
    schema: dict[str, Any],
    wall: float,
    n: int,
    eval_s: float,
    prompt_n: int,
    prompt_s: float,
) -> dict[str, Any]:
    try:
        finding = parse_answer(text, schema)
        valid, severity = True, finding["severity"]
    except InvalidAnswer:
        valid, severity = False, None
    return {
        "wall": wall,
        "valid": valid,
        "severity": severity,
        "eval_count": n,
        "eval_s": eval_s,
        "prompt_count": prompt_n,
        "prompt_s": prompt_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    options = {"temperature": 0, "seed": 42, "num_predict": 384}
    reqs = requests(Prompts.load())
    path = packaged_model_path()

    command = [
        sys.executable,
        "-m",
        "mcptool",
        "model",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--threads",
        str(args.threads),
        "--ctx",
        str(CTX),
        "--json",
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    start_to_ready = time.perf_counter() - started
    rss_loaded = rss_mb(proc.pid)[0]

    xlc = import_runtime()
    params = xlc.CommonParams()
    params.model.path = str(path)
    params.n_ctx, params.n_parallel = CTX, 1
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = args.threads
    params.warmup = False
    params.hostnames = [str(Path(tempfile.mkdtemp()) / "llama.sock")]
    t = time.perf_counter()
    direct = xlc.Server(params)
    direct_load = time.perf_counter() - t

    served: list[dict[str, Any]] = []
    straight: list[dict[str, Any]] = []
    try:
        for r in range(args.rounds):
            served += asyncio.run(via_server(ready["url"], reqs, options))
            straight += via_direct(direct, reqs, options)
            log(
                f"round {r + 1}: serve {statistics.fmean(x['wall'] for x in served):.1f} s, "
                f"direct {statistics.fmean(x['wall'] for x in straight):.1f} s a finding"
            )
        rss_now, rss_peak = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    del direct

    def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
        return {
            "s_per_finding": round(statistics.fmean(x["wall"] for x in rows), 2),
            "valid": round(sum(x["valid"] for x in rows) / len(rows), 2),
            "gen_tokens_per_s": round(
                sum(x["eval_count"] for x in rows) / sum(x["eval_s"] for x in rows), 1
            ),
            "prompt_tokens_per_s": round(
                sum(x["prompt_count"] for x in rows) / max(sum(x["prompt_s"] for x in rows), 1e-9),
                1,
            ),
            "prompt_tokens": round(statistics.fmean(x["prompt_count"] for x in rows)),
            "answer_tokens": round(statistics.fmean(x["eval_count"] for x in rows)),
        }

    s, d = summary(served), summary(straight)
    severities = [x["severity"] for x in served[: len(reqs)]]
    log(f"severities (boiler past critical, stuck, dip, drift, healthy): {severities}")
    print(
        json.dumps(
            {
                "model": QWEN_CODER_05B.name,
                "threads": args.threads,
                "findings": len(served),
                "load_s": round(ready["load_s"], 2),
                "start_to_ready_s": round(start_to_ready, 2),
                "direct_load_s": round(direct_load, 2),
                "rss_mb_loaded": round(rss_loaded),
                "rss_mb_after": round(rss_now),
                "rss_mb_peak": round(rss_peak),
                **{f"serve_{k}": v for k, v in s.items()},
                **{f"direct_{k}": v for k, v in d.items()},
                "serve_vs_direct": round(s["s_per_finding"] / d["s_per_finding"], 3),
                "severities": severities,
            }
        )
    )


if __name__ == "__main__":
    main()
