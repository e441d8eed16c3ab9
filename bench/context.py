"""Benchmark: the context server's "read current values of 100 points" over streamable HTTP.

Tool calls per second and p99 latency of ``read_values`` on a 100-point device (100
float32) through the official SDK's client, against a baseline measured in the same run:
a server on the same SDK (``MCPServer``, FastMCP's successor) whose tool opens a pymodbus
client per request and reads the registers, the way the existing Modbus servers for the
Model Context Protocol work. Both serve the same simulated device, on loopback, over the
same transport, from one SDK client making calls one after another; the two runs
alternate (twice each) and the better of each is kept, so a noisy neighbour slows both.

Ours runs with ``--gateway``: the gateway polls the device once a second and the tool
reads its current values, so a call costs no Modbus traffic. Measured twice: the
simulator answering at once (loopback: the baseline's best case, a connect and two reads
cost well under a millisecond) and answering each request after 5 ms, as a PLC or a
Modbus gateway on a LAN does. (The servers, the gateway, the simulator and the client
share one process and event loop here.)

The last stdout line is one JSON object: ``calls_per_s``, ``p99_ms`` (ours),
``baseline_calls_per_s``, ``baseline_p99_ms`` and ``vs_per_request_modbus`` (ours / the
baseline's calls per second) on loopback, and the same with ``device_5ms_`` in front.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import struct
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.shared._httpx_utils import create_mcp_http_client
from pymodbus.client import AsyncModbusTcpClient

from mcptool.context import open_context, serve_http
from mcptool.edge import parse_config
from simulators.modbus import DeviceProfile, ModbusSimulator
from simulators.modbus import Point as SimPoint
from simulators.modbus.faults import Fault

POINTS = 100
TOKEN = "bench-token"


def profile() -> DeviceProfile:
    return DeviceProfile(
        name="meter",
        points=[
            SimPoint("holding", 2 * i, "float32", value=20.0 + i, name=f"p{i}")
            for i in range(POINTS)
        ],
    )


def baseline_server(host: str, port: int) -> MCPServer:
    """A FastMCP-style server: each call connects pymodbus, reads, decodes, closes."""
    server: MCPServer = MCPServer("per-request-modbus", log_level="WARNING")

    async def read_points() -> dict[str, float]:
        """Read the 100 float32 points of the meter."""
        client = AsyncModbusTcpClient(host, port=port, timeout=3)
        await client.connect()
        try:
            registers: list[int] = []
            for start in (0, 100):  # 200 registers: two reads (at most 125 a read)
                reply = await client.read_holding_registers(start, count=100, device_id=1)
                registers.extend(reply.registers)
        finally:
            client.close()
        raw = struct.pack(f">{len(registers)}H", *registers)
        values = struct.unpack(f">{POINTS}f", raw)
        return {f"p{i}": value for i, value in enumerate(values)}

    server.add_tool(read_points, name="read_points", structured_output=True)
    return server


@contextlib.asynccontextmanager
async def serving(server: MCPServer) -> AsyncIterator[str]:
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_http(server, "127.0.0.1", 0, TOKEN, on_ready=ready.set_result))
    port = await asyncio.wait_for(ready, 10)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def measure(
    url: str, call: Callable[[Client], Awaitable[Any]], calls: int
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
    async with Client(transport) as client:
        for _ in range(20):  # warm up: connections, imports, caches
            await call(client)
        latencies = []
        started = time.perf_counter()
        for _ in range(calls):
            t0 = time.perf_counter()
            result = await call(client)
            latencies.append(time.perf_counter() - t0)
            assert not result.is_error, result.content
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "calls_per_s": calls / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
    }


async def run(calls: int, latency: float) -> dict[str, dict[str, float]]:
    """The best of two alternating runs each, the device answering after ``latency`` s."""
    faults = [Fault(kind="latency", seconds=latency)] if latency else []
    async with ModbusSimulator([profile()], faults=faults) as sim:
        host, port = sim.address
        with tempfile.TemporaryDirectory() as tmp:
            config = parse_config(
                {
                    "spool": {"path": str(Path(tmp) / "spool.db")},
                    "jsonl": {"path": str(Path(tmp) / "out.jsonl")},
                    "devices": [
                        {
                            "name": "meter",
                            "host": host,
                            "port": port,
                            "interval": 1.0,
                            "points": [
                                {"name": f"p{i}", "address": 2 * i, "type": "float32"}
                                for i in range(POINTS)
                            ],
                        }
                    ],
                },
                base_dir=Path(tmp),
            )

            async def ours(client: Client) -> Any:
                result = await client.call_tool("read_values", {"device": "meter"})
                assert len(result.structured_content["values"]) == POINTS
                return result

            async def theirs(client: Client) -> Any:
                result = await client.call_tool("read_points", {})
                assert len(result.structured_content) == POINTS
                return result

            runs: dict[str, list[dict[str, float]]] = {"ours": [], "baseline": []}
            async with open_context(config, gateway=True) as (tools, server):
                while not tools.values.gateway.current.device("meter"):  # type: ignore[attr-defined]
                    await asyncio.sleep(0.05)  # the first poll
                async with serving(server) as url, serving(baseline_server(host, port)) as base:
                    for _ in range(2):
                        runs["ours"].append(await measure(url, ours, calls))
                        runs["baseline"].append(await measure(base, theirs, calls))
    best = {k: max(v, key=lambda r: r["calls_per_s"]) for k, v in runs.items()}
    for name, result in best.items():
        print(
            f"device +{latency * 1000:.0f} ms  {name:9s} {result['calls_per_s']:8.0f} calls/s"
            f"  p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms"
        )
    return best


async def main(calls: int) -> None:
    best = await run(calls, 0.0)
    # a device on a LAN (a PLC, a Modbus gateway) answers in milliseconds, not in the
    # simulator's microseconds: what a read per request costs there
    slow = await run(calls, 0.005)
    print(
        json.dumps(
            {
                "points": POINTS,
                "calls": calls,
                "calls_per_s": round(best["ours"]["calls_per_s"], 1),
                "p99_ms": round(best["ours"]["p99_ms"], 2),
                "baseline_calls_per_s": round(best["baseline"]["calls_per_s"], 1),
                "baseline_p99_ms": round(best["baseline"]["p99_ms"], 2),
                "vs_per_request_modbus": round(
                    best["ours"]["calls_per_s"] / best["baseline"]["calls_per_s"], 2
                ),
                "device_5ms_calls_per_s": round(slow["ours"]["calls_per_s"], 1),
                "device_5ms_p99_ms": round(slow["ours"]["p99_ms"], 2),
                "device_5ms_baseline_calls_per_s": round(slow["baseline"]["calls_per_s"], 1),
                "device_5ms_baseline_p99_ms": round(slow["baseline"]["p99_ms"], 2),
                "device_5ms_vs_per_request_modbus": round(
                    slow["ours"]["calls_per_s"] / slow["baseline"]["calls_per_s"], 2
                ),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per run")
    args = parser.parse_args()
    asyncio.run(main(args.calls))
