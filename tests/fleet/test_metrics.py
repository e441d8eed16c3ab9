"""The hub's ingest and a worker on ``/metrics``: what was stored, closed, analysed and
found, scraped over HTTP as Prometheus would."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mcptool.fleet import FleetIngest, FleetWorker
from simulators.nats import NatsCluster
from simulators.ollama import OllamaSimulator
from tests.fleet.conftest import until_analysed
from tests.fleet.stream_reader import poll

BASE_MS = 1_700_000_000_000


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(url)).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_stored_closed_analysed_and_found_are_counted(nats_cluster: NatsCluster) -> None:
    async with (
        OllamaSimulator() as ollama,
        FleetIngest(nats_cluster.urls, window_s=5) as ingest,
        FleetWorker(nats_cluster.urls, ollama.url) as worker,
    ):
        for i in range(11):  # two windows closed
            await ingest.commit("node-1", [(i + 1, poll("boiler", BASE_MS + i * 1000, 20))])
        await ingest.commit("node-1", [(5, poll("boiler", BASE_MS + 4000, 20))])  # again
        await until_analysed(worker, 2)
        hub_port = ingest.metrics.serve("127.0.0.1", 0)
        worker_port = worker.metrics.serve("127.0.0.1", 0)
        try:
            hub = await scrape(f"http://127.0.0.1:{hub_port}/metrics")
            work = await scrape(f"http://127.0.0.1:{worker_port}/metrics")
        finally:
            ingest.metrics.close()
            worker.metrics.close()
    assert hub[("mcptool_fleet_frames_stored_total", ())] == 11
    assert hub[("mcptool_fleet_frames_duplicate_total", ())] == 1
    assert hub[("mcptool_fleet_windows_closed_total", ())] == 2
    assert hub[("mcptool_fleet_store_seconds_count", ())] == 12
    assert work[("mcptool_fleet_windows_analysed_total", (("type", "finding"),))] == 2
    assert sum(v for (name, _), v in work.items() if name == "mcptool_fleet_findings_total") == 2
    assert work[("mcptool_fleet_model_call_seconds_count", ())] == 2
    assert work[("mcptool_fleet_windows_in_flight", ())] == 0
