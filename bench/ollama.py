"""mcptool's Ollama client vs the official ``ollama.AsyncClient``, side by side, one run.

Both stream ``/api/generate`` answers (every chunk parsed and handed to the caller) from
the same simulator, started as a separate process (``mcptool simulate ollama``, tokens
without delay, parallelism above the concurrency so that the server never queues), at
concurrency 1 and 32. Rounds alternate between the two clients so that drift on a shared
machine hits both alike. Progress goes to stderr; the last stdout line is one JSON object.

    /work/venv/bin/python bench/ollama.py [--rounds 3] [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

# This file is bench/ollama.py: keep its folder off sys.path so `import ollama` finds the
# official client, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import ollama  # noqa: E402

from mcptool.ollama import OllamaClient, Timeouts  # noqa: E402

MODEL = "llama3.2"
CONCURRENCY = (1, 32)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcptool",
            "simulate",
            "ollama",
            "--port",
            "0",
            "--json",
            "--token-delay",
            "0",
            "--parallel",
            "64",
            "--queue",
            "4096",
            "--model",
            MODEL,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit("the simulator did not start")
    return process, json.loads(line)["url"]


Call = Callable[[int], Awaitable[int]]


def ours(client: OllamaClient) -> Call:
    async def call(i: int) -> int:
        chunks = 0
        async with client.stream_generate(MODEL, f"prompt {i % 50}") as stream:
            async for _chunk in stream:
                chunks += 1
        return chunks

    return call


def official(client: ollama.AsyncClient) -> Call:
    async def call(i: int) -> int:
        chunks = 0
        async for _part in await client.generate(MODEL, f"prompt {i % 50}", stream=True):
            chunks += 1
        return chunks

    return call


async def run(call: Call, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """Send ``requests`` calls with ``concurrency`` workers; return elapsed s and latencies."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            chunks = await call(i)
            latencies.append(time.perf_counter() - started)
            assert chunks > 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


async def bench(url: str, rounds: int, requests: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for concurrency in CONCURRENCY:
        n = requests if concurrency > 1 else max(50, requests // 4)
        totals = {"mcptool": [0.0, 0], "ollama": [0.0, 0]}
        latencies: dict[str, list[float]] = {"mcptool": [], "ollama": []}
        mine = OllamaClient(
            url, max_in_flight=concurrency, max_waiting=concurrency, timeouts=Timeouts(total=60)
        )
        theirs = ollama.AsyncClient(host=url)
        try:
            clients = {"mcptool": ours(mine), "ollama": official(theirs)}
            for call in clients.values():  # warm up pools and the model
                await run(call, concurrency * 2, concurrency)
            for index in range(rounds):
                order = list(clients) if index % 2 == 0 else list(reversed(clients))
                for name in order:
                    elapsed, lat = await run(clients[name], n, concurrency)
                    totals[name][0] += elapsed
                    totals[name][1] += n
                    latencies[name].extend(lat)
                    log(
                        f"c={concurrency:<3} round {index + 1}/{rounds} {name:<8} "
                        f"{n / elapsed:8.1f} req/s  p99 {p99(lat) * 1000:7.2f} ms"
                    )
        finally:
            await mine.aclose()
            await theirs._client.aclose()
        for name in clients:
            rate = totals[name][1] / totals[name][0]
            suffix = "" if name == "mcptool" else "_ollama_python"
            figures[f"req_per_s{suffix}_c{concurrency}"] = round(rate, 1)
            figures[f"p99_ms{suffix}_c{concurrency}"] = round(p99(latencies[name]) * 1000, 2)
        figures[f"vs_ollama_python_c{concurrency}"] = round(
            figures[f"req_per_s_c{concurrency}"]
            / figures[f"req_per_s_ollama_python_c{concurrency}"],
            3,
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=400, help="per round at c=32")
    args = parser.parse_args()
    process, url = start_simulator()
    log(f"simulator at {url}")
    try:
        figures = asyncio.run(bench(url, args.rounds, args.requests))
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
