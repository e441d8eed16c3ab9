"""Issue 13: strangers flooding the hub's handshake do not keep known nodes out.

256 sockets that never authenticate, each reopened the moment the hub turns it away (on
its REJECT, not even its close), from 16 loopback addresses, and two slowloris HELLOs
(one byte every 0.2 s) from a 17th, run in processes of their own
(simulators/mcp/flood.py) against a hub with the default limits, while 10 known nodes
connect, authenticate and deliver. Bounds stated in docs/LINK.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path

import pytest

from mcptool.link import LinkClient, LinkServer
from tests.link.conftest import eventually

NODES = {f"node-{i}": (b"key-%02d-" % i) * 4 for i in range(10)}
ROOT = Path(__file__).parents[2]


async def known_nodes_deliver(hub: LinkServer, label: str) -> list[tuple[float, int]]:
    """Each node's time from connect to its first DATA acknowledged, and its attempts."""

    async def one(node: str) -> tuple[float, int]:
        link = LinkClient(hub.url, node, NODES[node])
        started = time.perf_counter()
        try:
            await link.start(timeout=30)
            await link.send(f"{label} {node}".encode())
            return time.perf_counter() - started, link.machine.attempt
        finally:
            await link.close()

    return await asyncio.gather(*(one(node) for node in NODES))


async def flood(port: int, *options: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators.mcp.flood",
        f"127.0.0.1:{port}",
        "--duration",
        "120",  # a safety net: a flooder ends by itself should the test not stop it
        *options,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )


async def stop(process: asyncio.subprocess.Process) -> dict:
    if process.returncode is None:
        process.terminate()
    out, _ = await process.communicate()
    lines = out.decode().strip().splitlines()
    return json.loads(lines[-1]) if lines else {"opened": 0}


async def test_ten_known_nodes_get_in_while_256_strangers_and_a_slowloris_flood(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mcptool.link.server")
    delivered: list[bytes] = []
    hub = LinkServer(
        keys=NODES,
        on_data=lambda node, seq, body: delivered.append(body),
        refusal_log_interval=1.0,  # the default is 60 s; 1 s puts summaries in the test
    )
    async with hub:
        baseline = await known_nodes_deliver(hub, "calm")
        port = hub.address[1]
        strangers = await flood(port, "--sockets", "256", "--sources", "127.0.0.2-17", "--eager")
        slowloris = await flood(
            port, "--sockets", "0", "--slowloris", "2", "--sources", "127.0.0.30"
        )
        flood_started = time.perf_counter()
        try:
            # The flood is on once the stranger slots are full and strangers are cut.
            await eventually(
                lambda: (
                    hub.admission.strangers == hub.admission.stranger_slots
                    and hub.stats.refused_busy > 100
                ),
                timeout=30,
            )
            under_flood = await known_nodes_deliver(hub, "flood")
            # The slowloris never completes its HELLO: it is cut (at hello_timeout, 2 s,
            # unless newer strangers turn it away first), and so is the next one.
            await eventually(lambda: "handshake from 127.0.0.30 refused" in caplog.text)
            # Refusals are told per address and interval, while the flood goes on.
            await eventually(
                lambda: "handshakes refused from 127.0.0.2 in the last 1 s" in caplog.text
            )
            # Memory: state machines only for the handshake slots and the sessions; other
            # sockets are strangers turned away, at most one per flooding socket.
            assert hub.handshaking <= hub.max_handshakes
            assert hub.lingering <= 256 + 2
            assert hub.sockets <= hub.max_handshakes + len(NODES) + 256 + 2
            assert len(hub.refusals) <= hub.refusals.max_addresses + 1
        finally:
            # Both stopped, whatever happens: a flooder left running outlives the test.
            flooded, _ = await asyncio.gather(stop(strangers), stop(slowloris))
        flood_seconds = time.perf_counter() - flood_started
    # Every known node got in at its first attempt and delivered; no stranger did.
    assert sorted(delivered) == sorted(
        f"{label} {node}".encode() for label in ("calm", "flood") for node in NODES
    )
    assert [attempts for _, attempts in under_flood] == [1] * len(NODES)
    worst_calm = max(seconds for seconds, _ in baseline)
    worst_flood = max(seconds for seconds, _ in under_flood)
    # Not a timing assertion (the machine is shared): a deadline far above both.
    assert worst_flood < max(20 * worst_calm, 10.0)
    assert hub.stats.sessions == 2 * len(NODES)
    # The log: at most two lines per address (16 + the slowloris's) and interval, not
    # one per refusal; the flood made thousands.
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    intervals = flood_seconds / hub.refusals.interval + 2
    assert len(refusals) <= 2 * 17 * intervals
    assert hub.stats.handshakes_failed > 5 * len(refusals) or flooded["opened"] < 1000
    print(
        f"\nworst handshake+delivery: calm {worst_calm * 1000:.0f} ms,"
        f" under flood {worst_flood * 1000:.0f} ms; flood {flooded},"
        f" {hub.stats.handshakes_failed} refused in {flood_seconds:.1f} s,"
        f" {len(refusals)} log lines"
    )
