"""The fleet under fire: 3 hubs, 5 nodes, 3 workers on a 3-node NATS cluster, and a hub,
a worker and a NATS server SIGKILLed during the run. Every reading is stored exactly once
(by node:seq), every window is analysed, and no window has a second finding."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from mcptool.fleet import StreamSettings, ensure_consumer, ensure_streams
from mcptool.fleet.ingest import connect, retry
from mcptool.fleet.subjects import (
    DATA_STREAM,
    FINDINGS_STREAM,
    HEADER_SEQ,
    finding_id,
    node_data_filter,
)
from mcptool.link import Backoff, LinkClient
from simulators.nats import NatsCluster
from simulators.ollama import OllamaSimulator
from tests.fleet.conftest import KEYS, write_keys
from tests.fleet.processes import Process, start_hub, start_worker
from tests.fleet.stream_reader import findings, poll, stored_readings

FAST = Backoff(initial=0.1, multiplier=1.5, jitter=0.2, maximum=0.5)
WINDOW_S = 1.0
STEP_MS = 250  # four polls a window
POLLS = 40  # per device: ten windows
DEVICES = ("boiler", "meter")
BASE_MS = 1_700_000_000_000


async def until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    async def check() -> None:
        while not await predicate():  # type: ignore[misc]
            await asyncio.sleep(0.1)

    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_nothing_lost_or_doubled_when_a_hub_a_worker_and_a_nats_server_die(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    keys = write_keys(tmp_path / "keys")
    settings = StreamSettings(ack_wait_s=2.0)  # a dead worker's windows move on after 2 s
    nc = await connect(nats_cluster.urls, "proof")
    js = nc.jetstream(timeout=5)
    await ensure_streams(js, settings)
    await ensure_consumer(js, settings)
    processes: list[Process] = []
    links: list[LinkClient] = []
    try:
        async with OllamaSimulator(parallel=4, token_delay=0.001) as ollama:
            # in threads: the simulator in this loop answers the workers while they start
            hubs = await asyncio.gather(
                *(
                    asyncio.to_thread(
                        start_hub, keys, nats_cluster.url, WINDOW_S, tmp_path / f"hub{i}.log"
                    )
                    for i in range(3)
                )
            )
            processes += [hub for hub, _ in hubs]
            workers = await asyncio.gather(
                *(
                    asyncio.to_thread(
                        start_worker, nats_cluster.url, ollama.url, tmp_path / f"worker{i}.log"
                    )
                    for i in range(3)
                )
            )
            processes += workers
            urls = [url for _, url in hubs]
            for i, node in enumerate(KEYS):
                # each node starts at a different hub and fails over along the list
                link = LinkClient(urls[i % 3 :] + urls[: i % 3], node, KEYS[node], backoff=FAST)
                links.append(link)
                await link.start(10)

            total = len(KEYS) * (POLLS + 1) * len(DEVICES)
            acked: dict[str, int] = dict.fromkeys(KEYS, 0)
            chaos_done = asyncio.Event()
            caught_mid_commit = False

            def counter(node: str) -> Callable[[asyncio.Future[int]], None]:
                def one_acked(_: asyncio.Future[int]) -> None:
                    acked[node] += 1

                return one_acked

            async def stored_ahead_of_ack(node: str) -> bool:
                """The hub stored frames of ``node`` it has not acknowledged yet."""
                last = await retry(lambda: js.get_last_msg(DATA_STREAM, node_data_filter(node)), 30)
                return int((last.headers or {})[HEADER_SEQ]) > acked[node]

            async def chaos() -> None:
                nonlocal caught_mid_commit
                # By progress, not by the clock. The hub dies between storing and
                # acknowledging (what failover must not double) when the test can catch
                # it there; node-1 starts at hub 0.
                while acked["node-1"] < 10:
                    await asyncio.sleep(0.005)
                for _ in range(200):
                    if await stored_ahead_of_ack("node-1"):
                        caught_mid_commit = True
                        break
                hubs[0][0].kill()
                while sum(acked.values()) < 0.45 * total:
                    await asyncio.sleep(0.01)
                workers[0].kill()  # model calls take 100 ms: it dies with windows taken
                while sum(acked.values()) < 0.65 * total:
                    await asyncio.sleep(0.01)
                nats_cluster.kill(nats_cluster.nodes[0])
                chaos_done.set()

            async def node(link: LinkClient) -> list[asyncio.Future[int]]:
                futures = []
                for i in range(POLLS + 1):
                    # the last poll is far ahead: it closes each device's last window
                    ts = BASE_MS + (i * STEP_MS if i < POLLS else 3_600_000)
                    for device in DEVICES:
                        future = await link.submit(poll(device, ts, 20 + i % 5))
                        future.add_done_callback(counter(link.node_id))
                        futures.append(future)
                    await asyncio.sleep(0.01)  # a gateway's poll interval, compressed
                return futures

            chaos_task = asyncio.ensure_future(chaos())
            sent = await asyncio.gather(*(node(link) for link in links))
            await asyncio.wait_for(asyncio.gather(*(f for fs in sent for f in fs)), 90)
            await asyncio.wait_for(chaos_done.wait(), 30)
            await chaos_task

            expected = {
                finding_id(node, device, BASE_MS // 1000 + w)
                for node in KEYS
                for device in DEVICES
                for w in range(POLLS * STEP_MS // 1000)
            }

            async def all_found() -> bool:
                # this test's own connection may be on the NATS server that died
                info = await retry(lambda: js.stream_info(FINDINGS_STREAM), 30)
                return info.state.messages >= len(expected)

            await until(all_found, 120, f"{len(expected)} findings")
            stored = await retry(lambda: stored_readings(js), 30)
            found = await retry(lambda: findings(js), 30)
    finally:
        for link in links:
            await link.close()
        for process in processes:
            process.stop()
        await nc.close()

    assert sorted(stored) == sorted(
        (node, seq) for node in KEYS for seq in range(1, (POLLS + 1) * len(DEVICES) + 1)
    )
    assert set(stored.values()) == {1}, "a reading stored twice"
    assert set(found) == expected, "a window not analysed"
    assert set(found.values()) == {1}, "a window with a second finding"
    assert caught_mid_commit, "hub 0 was not killed between storing and acknowledging"
    assert hubs[0][0].process.returncode == -9 and workers[0].process.returncode == -9
