"""Analysis workers: every closed window analysed once, a redelivered one never yields a
second finding."""

from __future__ import annotations

import asyncio
import json

from mcptool.fleet import ClosedWindow, FleetIngest, FleetWorker, StreamSettings
from mcptool.fleet.streams import ensure_consumer
from mcptool.fleet.subjects import WINDOWS_STREAM, WORKERS
from simulators.nats import NatsCluster
from simulators.ollama import OllamaSimulator
from tests.fleet.stream_reader import finding_records, findings, poll

BASE_MS = 1_700_000_000_000


async def ingest_polls(ingest: FleetIngest, node: str, device: str, count: int) -> None:
    for i in range(count):
        await ingest.commit(node, [(i + 1, poll(device, BASE_MS + i * 1000, 20 + i % 3))])


async def until(predicate, timeout: float = 30.0) -> None:
    async def poll_it() -> None:
        while not await predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll_it(), timeout)


async def test_each_closed_window_gets_one_model_finding(nats_cluster: NatsCluster) -> None:
    async with (
        OllamaSimulator() as ollama,
        FleetIngest(nats_cluster.urls, window_s=5) as ingest,
        FleetWorker(nats_cluster.urls, ollama.url, max_in_flight=2) as worker,
    ):
        await ingest_polls(ingest, "node-1", "boiler", 21)  # windows 0..3 closed, 4 open
        await ingest_polls(ingest, "node-2", "meter", 11)  # windows 0..1 closed
        stop = asyncio.Event()
        running = asyncio.ensure_future(worker.run(stop))
        await until(lambda: _count(ingest, 6))
        stop.set()
        await running
        records = await finding_records(ingest._js)
        assert sum((await findings(ingest._js)).values()) == 6
    assert sorted(r["id"] for r in records) == sorted(
        [f"finding:node-1/boiler@{BASE_MS // 5000 + i}" for i in range(4)]
        + [f"finding:node-2/meter@{BASE_MS // 5000 + i}" for i in range(2)]
    )
    assert {r["type"] for r in records} == {"finding"}
    assert {r["source"] for r in records} == {"model"}
    assert {r["readings"] for r in records} == {5}
    assert {(r["node"], r["device"]) for r in records} == {
        ("node-1", "boiler"),
        ("node-2", "meter"),
    }


async def _count(ingest: FleetIngest, expected: int) -> bool:
    return sum((await findings(ingest._js)).values()) >= expected


async def test_a_window_whose_worker_died_is_analysed_by_another_and_found_once(
    nats_cluster: NatsCluster,
) -> None:
    settings = StreamSettings(ack_wait_s=1.0)
    async with (
        OllamaSimulator() as ollama,
        FleetIngest(nats_cluster.urls, window_s=5, settings=settings) as ingest,
    ):
        await ingest_polls(ingest, "node-1", "boiler", 6)  # one window closed
        js = ingest._js
        await ensure_consumer(js, settings)
        # A worker that takes the window, publishes its finding, and dies before its ack.
        async with FleetWorker(nats_cluster.urls, ollama.url, settings=settings) as dying:
            taken = await (await js.pull_subscribe_bind(WORKERS, stream=WINDOWS_STREAM)).fetch(1)
            window = json.loads(taken[0].data)
            record = await dying.analyse(ClosedWindow.from_json(window))
            await js.publish(
                "fleet.findings.node-1.boiler",
                json.dumps(record).encode(),
                headers={"Nats-Msg-Id": record["id"]},
            )
        # never acknowledged: after ack_wait another worker gets it
        async with FleetWorker(nats_cluster.urls, ollama.url, settings=settings) as survivor:
            stop = asyncio.Event()
            running = asyncio.ensure_future(survivor.run(stop))
            await until(lambda: _analysed(survivor))
            stop.set()
            await running
        assert survivor.duplicates == 1
        assert dict(await findings(js)) == {record["id"]: 1}
        assert (await js.stream_info(WINDOWS_STREAM)).state.messages == 0


async def _analysed(worker: FleetWorker) -> bool:
    return worker.analysed >= 1
