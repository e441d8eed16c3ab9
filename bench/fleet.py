"""Windows analysed per second by 1, 2 and 4 fleet workers, and with a NATS server killed.

Each run gets a fresh 3-node NATS cluster (Debian ``nats-server``, R3 streams), an Ollama
simulator whose every model call takes about 200 ms (a fixed answer of N tokens,
``token_delay`` = 0.2 s / N; ``parallel`` above the workers, like a pool of model
servers) and ``mcptool worker`` processes (one window in flight each). The workers are
started and ready first; then the windows are produced through ``FleetIngest`` (polls of
many devices, four a window, stored and closed as a hub does) and the clock runs until
every window has its finding in ``FLEET_FINDINGS``. The last run repeats 4 workers and
SIGKILLs a NATS server when half of the findings are in.

Baseline: 1 worker in the same run (``scaling_4`` = windows/s of 4 workers / of 1).
Progress goes to stderr; the last stdout line is one JSON object.

    .venv/bin/python bench/fleet.py [--windows 48]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from mcptool.fleet import (
    DATA_STREAM,
    FINDINGS_STREAM,
    FleetIngest,
    StreamSettings,
    ensure_consumer,
    finding_id,
)
from mcptool.fleet.ingest import retry
from mcptool.fleet.subjects import HEADER_NODE, HEADER_SEQ, MSG_ID
from simulators.nats import NatsCluster
from simulators.ollama import OllamaSimulator
from simulators.ollama.text import tokenize

MODEL_CALL_S = 0.2
POLLS_PER_WINDOW = 4
WINDOW_S = 1.0
BASE_MS = 1_700_000_000_000
ANSWER = json.dumps(
    {
        "severity": "normal",
        "summary": "temperature steady within its usual range",
        "suspected_causes": [],
        "recommended_actions": ["none"],
        "points": ["temperature"],
    }
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def poll(device: str, ts_ms: int, value: float) -> bytes:
    return json.dumps(
        {
            "device": device,
            "kind": "telemetry",
            "ts": ts_ms,
            "readings": [{"point": "temperature", "value": value, "unit": "°C"}],
        }
    ).encode()


def start_worker(nats_url: str, ollama_url: str, log_path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "mcptool", "worker", "--nats", nats_url, "--ollama", ollama_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    banner = process.stdout.readline()
    if not banner.startswith("worker taking windows"):
        process.kill()
        raise RuntimeError(f"worker did not start: {banner}")
    return process


async def all_messages(js: JetStreamContext, stream: str) -> list[Any]:
    info = await js.stream_info(stream)
    found = []
    for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
        try:
            found.append(await retry(lambda seq=seq: js.get_msg(stream, seq), 30))
        except NotFoundError:
            continue
    return found


async def produce(ingest: FleetIngest, windows: int) -> tuple[set[str], int]:
    """``windows`` closed windows (devices d0.., one node each, ``windows`` + 1 windows of
    readings so the last of each device closes); returns their finding ids and the
    number of readings."""
    devices = max(1, windows // 8)
    per_device = -(-windows // devices)
    expected: set[str] = set()
    readings = 0
    for d in range(devices):
        node, device = f"site-{d}", "boiler"
        seq = 0
        count = min(per_device, windows - len(expected))
        for w in range(count + 1):
            frames = []
            for p in range(POLLS_PER_WINDOW if w < count else 1):
                seq += 1
                ts = BASE_MS + int((w * WINDOW_S + p * WINDOW_S / POLLS_PER_WINDOW) * 1000)
                frames.append((seq, poll(device, ts, 60 + p)))
            await ingest.commit(node, frames)
            readings += len(frames)
            if w < count:
                expected.add(finding_id(node, device, BASE_MS // 1000 + w))
    return expected, readings


async def run(workers: int, windows: int, kill_nats: bool, ollama_url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as directory:
        cluster = NatsCluster(Path(directory) / "nats", 3).start()
        processes: list[subprocess.Popen[str]] = []
        try:
            await cluster.ready()
            settings = StreamSettings(ack_wait_s=5.0)
            async with FleetIngest(cluster.urls, window_s=WINDOW_S, settings=settings) as ingest:
                js = ingest._js  # the bench reads the streams the ingest made
                await ensure_consumer(js, settings)
                processes = await asyncio.gather(
                    *(
                        asyncio.to_thread(
                            start_worker, cluster.url, ollama_url, Path(directory) / f"w{i}.log"
                        )
                        for i in range(workers)
                    )
                )
                started = time.perf_counter()
                expected, readings = await produce(ingest, windows)
                killed = False
                while True:
                    # the bench's own connection may be on the server it kills
                    info = await retry(lambda: js.stream_info(FINDINGS_STREAM), 30)
                    done = info.state.messages
                    if kill_nats and not killed and done >= len(expected) // 2:
                        cluster.kill(cluster.nodes[0])
                        killed = True
                        log(f"  killed NATS server n1 at {done} findings")
                    if done >= len(expected):
                        break
                    if time.perf_counter() - started > 600:
                        break
                    await asyncio.sleep(0.02)
                elapsed = time.perf_counter() - started
                findings = Counter(
                    (m.headers or {}).get(MSG_ID, "")
                    for m in await all_messages(js, FINDINGS_STREAM)
                )
                records = [json.loads(m.data) for m in await all_messages(js, FINDINGS_STREAM)]
                stored = Counter(
                    ((m.headers or {}).get(HEADER_NODE), (m.headers or {}).get(HEADER_SEQ))
                    for m in await all_messages(js, DATA_STREAM)
                )
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
            cluster.stop()
    model_ms = [r["timings"]["wall_ms"] for r in records if "timings" in r]
    result = {
        "workers": workers,
        "windows": len(expected),
        "seconds": round(elapsed, 3),
        "windows_per_s": round(len(expected & set(findings)) / elapsed, 2),
        "lost": len(expected - set(findings)),
        "duplicate_findings": sum(n - 1 for n in findings.values()),
        "readings_stored": len(stored),
        "readings_lost": readings - len(stored),
        "readings_doubled": sum(n - 1 for n in stored.values()),
        "model_call_ms_mean": round(sum(model_ms) / len(model_ms), 1) if model_ms else None,
    }
    log(f"  {json.dumps(result)}")
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=48, help="windows per run (default 48)")
    args = parser.parse_args()
    tokens = len(tokenize(ANSWER))
    async with OllamaSimulator(
        token_delay=MODEL_CALL_S / tokens, parallel=16, answer=lambda kind, body: ANSWER
    ) as ollama:
        log(f"model calls: {tokens} tokens x {MODEL_CALL_S / tokens * 1000:.1f} ms")
        runs = {}
        for workers in (1, 2, 4):
            log(f"{workers} worker(s)")
            runs[workers] = await run(workers, args.windows, False, ollama.url)
        log("4 workers, a NATS server killed mid-run")
        killed = await run(4, args.windows, True, ollama.url)
    every = [*runs.values(), killed]
    summary = {
        "windows": args.windows,
        "model_call_ms": round(MODEL_CALL_S * 1000),
        "model_call_ms_mean": runs[1]["model_call_ms_mean"],
        "windows_per_s_1": runs[1]["windows_per_s"],
        "windows_per_s_2": runs[2]["windows_per_s"],
        "windows_per_s_4": runs[4]["windows_per_s"],
        "scaling_2": round(runs[2]["windows_per_s"] / runs[1]["windows_per_s"], 2),
        "scaling_4": round(runs[4]["windows_per_s"] / runs[1]["windows_per_s"], 2),
        "windows_per_s_4_nats_killed": killed["windows_per_s"],
        "scaling_4_nats_killed": round(killed["windows_per_s"] / runs[1]["windows_per_s"], 2),
        "lost": sum(r["lost"] for r in every),
        "duplicate_findings": sum(r["duplicate_findings"] for r in every),
        "readings_lost": sum(r["readings_lost"] for r in every),
        "readings_doubled": sum(r["readings_doubled"] for r in every),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
