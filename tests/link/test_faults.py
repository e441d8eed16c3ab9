"""Faults over real loopback sockets: killed hubs, silent links. Nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from mcptool.link import ClientState, LinkClient, MemoryLedger
from simulators.mcp import FaultProxy, McpPeer
from tests.link.conftest import KEY, NODE, eventually, fast_backoff, write_keys


async def test_hub_crashed_and_restarted_while_sending_loses_and_doubles_nothing() -> None:
    # The hub crashes twice right after delivering frames and before acknowledging them,
    # so the node must send those again and the restarted hub must drop them.
    ledger, delivered = MemoryLedger(), []
    hub = McpPeer({NODE: KEY}, ledger=ledger, delivered=delivered, crash_at={500, 1400})
    await hub.start()
    host, port = hub.address
    bodies = [b"reading-%d" % n for n in range(2000)]
    restarts = 0

    async def restart_after_crashes() -> None:
        nonlocal hub, restarts
        while restarts < 2:
            await hub.crashed.wait()
            old = hub
            hub = McpPeer(
                {NODE: KEY},
                host,
                port,
                ledger=ledger,
                delivered=delivered,
                crash_at=old.crash_at,
            )
            await old.stop(abort=True)
            await hub.start()
            restarts += 1

    async with LinkClient(hub.url, NODE, KEY, backoff=fast_backoff()) as link:
        restarter = asyncio.create_task(restart_after_crashes())
        futures = [await link.submit(body) for body in bodies]
        await asyncio.wait_for(asyncio.gather(*futures), 30)
    await restarter
    await hub.stop()
    assert restarts == 2
    assert [body for _, _, body in delivered] == bodies
    assert [seq for _, seq, _ in delivered] == list(range(1, 2001))


async def test_hub_process_killed_and_restarted_with_its_journal_is_exactly_once(
    tmp_path: Path,
) -> None:
    keys = write_keys(tmp_path / "keys", f"{NODE} {KEY.decode()}\n")
    journal = tmp_path / "journal.jsonl"

    async def start_hub(listen: str) -> tuple[asyncio.subprocess.Process, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mcptool",
            "hub",
            "--listen",
            listen,
            "--keys",
            str(keys),
            "--journal",
            str(journal),
            "--quiet",
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert "hub listening on" in line, line
        return process, line.split()[3]

    process, url = await start_hub("127.0.0.1:0")
    bodies = [b"frame-%d" % n for n in range(1500)]
    try:
        async with LinkClient(url, NODE, KEY, backoff=fast_backoff()) as link:
            futures = []
            for n, body in enumerate(bodies):
                futures.append(await link.submit(body))
                if n == 700:
                    await eventually(lambda: journal.exists() and journal.stat().st_size > 0)
                    os.kill(process.pid, signal.SIGKILL)
                    await process.wait()
                    process, _ = await start_hub(url.removeprefix("mcp://"))
            await asyncio.wait_for(asyncio.gather(*futures), 30)
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [r["data"].encode() for r in records] == bodies
    assert [r["seq"] for r in records] == list(range(1, 1501))


async def test_a_silent_link_is_detected_by_the_node_through_heartbeats() -> None:
    async with McpPeer({NODE: KEY}, heartbeat_interval=0.2, dead_after=3) as hub:
        async with FaultProxy(*hub.address) as proxy:
            states: list[str] = []
            link = LinkClient(
                proxy.url,
                NODE,
                KEY,
                backoff=fast_backoff(),
                on_state_change=lambda e: states.append(e.reason),
            )
            await link.start(5)
            await link.send(b"before")
            proxy.stall()  # no FIN, no RST: the packets just stop
            await eventually(lambda: link.state is not ClientState.ESTABLISHED, timeout=5)
            assert any("peer dead" in reason for reason in states)
            proxy.resume()
            await link.wait_established()
            await link.send(b"after")
            await link.close()
        assert hub.bodies() == [b"before", b"after"]


async def test_a_silent_node_is_detected_by_the_hub() -> None:
    downs: list[str] = []
    async with (
        McpPeer(
            {NODE: KEY},
            heartbeat_interval=0.2,
            dead_after=2,
            on_session=lambda node, up, reason: downs.append(reason) if not up else None,
        ) as hub,
        FaultProxy(*hub.address) as proxy,
    ):
        link = LinkClient(proxy.url, NODE, KEY, reconnect=False)
        await link.start(5)
        proxy.stall()
        await eventually(lambda: downs, timeout=5)
        assert "peer dead" in downs[0]
        await link.close()


async def test_a_connection_cut_mid_stream_is_resumed_without_loss(peer: McpPeer) -> None:
    async with FaultProxy(*peer.address) as proxy:
        bodies = [b"%d" % n for n in range(1000)]
        async with LinkClient(proxy.url, NODE, KEY, backoff=fast_backoff()) as link:
            futures = []
            for n, body in enumerate(bodies):
                futures.append(await link.submit(body))
                if n % 250 == 100:
                    proxy.cut()
            await asyncio.wait_for(asyncio.gather(*futures), 30)
    assert peer.bodies() == bodies
