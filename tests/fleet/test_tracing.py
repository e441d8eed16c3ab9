"""One trace from a gateway's poll to its window's finding: the gateway's poll, spool
commit and uplink send, the hub's store, the worker's window, the model call and the
finding, every span present and parented; and the hub's and the worker's log lines and
exemplars naming that trace."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from mcptool.fleet import FleetIngest, FleetWorker, tracing
from mcptool.fleet.metrics import IngestMetrics, WorkerMetrics
from mcptool.gateway import Gateway, parse_config
from mcptool.link import LinkClient, LinkServer
from mcptool.tracing import log_trace_ids
from simulators.modbus import DeviceProfile, ModbusSimulator
from simulators.modbus import Point as SimPoint
from simulators.nats import NatsCluster
from simulators.ollama import OllamaSimulator
from tests.fleet.conftest import KEYS, until_analysed
from tests.fleet.processes import start_worker
from tests.fleet.stream_reader import finding_records, messages
from tests.gateway.conftest import until
from tests.spans import Spans, otlp_collector, recording

BASE_MS = 1_700_000_000_000


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = recording()
    yield exporter
    exporter.clear()


def poll(ts_ms: int, traceparent: str) -> bytes:
    return json.dumps(
        {
            "device": "boiler",
            "kind": "telemetry",
            "ts": ts_ms,
            "traceparent": traceparent,
            "readings": [{"point": "temperature", "value": 70.5, "unit": "°C"}],
        }
    ).encode()


@asynccontextmanager
async def hub_with_node(urls: list[str]) -> AsyncIterator[tuple[FleetIngest, LinkClient]]:
    """A hub storing in the cluster (windows of 5 s) and node-1 connected to it."""
    async with (
        FleetIngest(urls, window_s=5) as ingest,
        LinkServer(
            "127.0.0.1", 0, KEYS, commit=ingest.commit, resume_point=ingest.resume_point
        ) as hub,
        LinkClient(hub.url, "node-1", KEYS["node-1"]) as link,
    ):
        yield ingest, link


async def send_window(link: LinkClient) -> list[bytes]:
    """A window of five polls and the one that closes it, each sent under a gateway span
    of its own (a trace each); their messages."""
    gateway = trace.get_tracer("test.gateway")
    sent = []
    for i in range(6):
        with gateway.start_as_current_span("gateway.poll"):
            sent.append(poll(BASE_MS + i * 1000, tracing.inject({})["traceparent"]))
            await link.send(sent[-1])
    return sent


async def test_a_reading_is_traced_from_poll_to_finding(
    nats_cluster: NatsCluster, spans: InMemorySpanExporter
) -> None:
    async with (
        OllamaSimulator() as ollama,
        hub_with_node(nats_cluster.urls) as (ingest, link),
        FleetWorker(nats_cluster.urls, ollama.url) as worker,
    ):
        await send_window(link)
        await until_analysed(worker, 1)
        (record,) = await finding_records(ingest._js)
        (stored_finding,) = await messages(ingest._js, "FLEET_FINDINGS")

    finished: list[ReadableSpan] = list(spans.get_finished_spans())
    by_id = {span.context.span_id: span for span in finished}

    def parent(span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None, f"{span.name} has no parent"
        return by_id[span.parent.span_id]

    (window,) = [s for s in finished if s.name == "fleet.window"]
    (model_call,) = [s for s in finished if s.name == "analysis.model_call"]
    (finding,) = [s for s in finished if s.name == "fleet.finding"]
    polls = [s for s in finished if s.name == "gateway.poll"]
    stores = [s for s in finished if s.name == "fleet.store"]
    assert len(polls) == len(stores) == 6

    # poll -> store -> window -> model call, and window -> finding: one trace
    first_store = parent(window)
    assert first_store.name == "fleet.store" and parent(first_store) is polls[0]
    assert parent(model_call) is window and parent(finding) is window
    assert {s.context.trace_id for s in (polls[0], first_store, window, model_call, finding)} == {
        polls[0].context.trace_id
    }
    # the other four readings of the window are linked, each to its own trace
    linked = {link.context.span_id for link in window.links}
    assert linked == {store.context.span_id for store in stores[1:5]}
    for store, poll_span in zip(stores, polls, strict=True):
        assert parent(store) is poll_span
    # the finding names its trace, in its record and in its message's traceparent
    assert record["trace_id"] == format(polls[0].context.trace_id, "032x")
    assert stored_finding.headers["traceparent"].split("-")[1] == record["trace_id"]
    assert format(finding.context.span_id, "016x") in stored_finding.headers["traceparent"]


async def test_a_gateways_reading_is_traced_through_spool_link_hub_and_worker_to_its_finding(
    nats_cluster: NatsCluster, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    boiler = DeviceProfile(
        name="boiler",
        points=[SimPoint("holding", 0, "float32", value={"kind": "counter", "rate": 10})],
    )
    async with (
        ModbusSimulator([boiler]) as devices,
        OllamaSimulator() as ollama,
        FleetIngest(nats_cluster.urls, window_s=1) as ingest,
        LinkServer(
            "127.0.0.1", 0, KEYS, commit=ingest.commit, resume_point=ingest.resume_point
        ) as hub,
        FleetWorker(nats_cluster.urls, ollama.url) as worker,
    ):
        host, port = devices.addresses[0]
        config = parse_config(
            {
                "node": "node-1",
                "spool": {"path": str(tmp_path / "spool.db")},
                "uplink": {"url": hub.url, "key": KEYS["node-1"].decode()},
                "tracing": {},
                "devices": [
                    {"name": "boiler", "host": host, "port": port, "interval": 0.2,
                     "points": [{"name": "temperature", "address": 0, "type": "float32"}]},
                ],
            }
        )  # fmt: skip
        async with Gateway(config):
            await until_analysed(worker, 1)
        records = await finding_records(ingest._js)

    found = Spans(spans)
    finding = found.named("fleet.finding")[0]
    window = found.parent(finding)
    store = found.parent(window)
    link = found.parent(store)
    spool = found.parent(link)
    poll = found.parent(spool)
    chain = [poll, spool, link, store, window, finding]
    assert [span.name for span in chain] == [
        "gateway.poll", "gateway.spool", "gateway.link", "fleet.store", "fleet.window",
        "fleet.finding",
    ]  # fmt: skip
    assert [span.kind for span in (poll, link, store, window)] == [
        SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.PRODUCER, SpanKind.CONSUMER,
    ]  # fmt: skip
    assert poll.parent is None  # the trace starts at the poll
    (model_call,) = [s for s in found.named("analysis.model_call") if found.parent(s) is window]
    trace_ids = {span.context.trace_id for span in (*chain, model_call)}
    assert trace_ids == {poll.context.trace_id}
    assert poll.attributes is not None and store.attributes is not None
    assert (poll.attributes["mcp.device"], store.attributes["mcp.device"]) == ("boiler", "boiler")
    assert store.attributes["mcp.node"] == "node-1"
    # the window's other readings: linked, each the store of its own gateway trace
    for linked in window.links:
        other = found.by_id[linked.context.span_id]
        assert other.name == "fleet.store"
        assert found.parent(found.parent(found.parent(other))).name == "gateway.poll"
    # the finding's record names the poll's trace
    (record,) = [r for r in records if r["id"] == finding.attributes["fleet.finding"]]  # type: ignore[index]
    assert record["trace_id"] == format(poll.context.trace_id, "032x")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The lines mcptool logs at INFO, formatted as `hub` and `worker` format them, the
    handler stamped as their ``--otlp`` stamps it."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    root, ours = logging.getLogger(), logging.getLogger("mcptool")
    level = ours.level
    root.addHandler(handler)
    ours.setLevel(logging.INFO)
    log_trace_ids(end_lines=True)
    yield text
    root.removeHandler(handler)
    ours.setLevel(level)


async def exemplars(metrics: IngestMetrics | WorkerMetrics) -> dict[str, set[str]]:
    """The trace ids of the exemplars on ``metrics``' /metrics (OpenMetrics), by sample."""
    port = metrics.serve("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as client:
            reply = await client.get(
                f"http://127.0.0.1:{port}/metrics",
                headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            )
    finally:
        metrics.close()
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            if sample.exemplar is not None:
                found.setdefault(sample.name, set()).add(sample.exemplar.labels["trace_id"])
    return found


async def test_the_hubs_and_the_workers_log_lines_and_metrics_name_the_readings_trace(
    nats_cluster: NatsCluster, spans: InMemorySpanExporter, log_lines: io.StringIO
) -> None:
    async with (
        OllamaSimulator() as ollama,
        hub_with_node(nats_cluster.urls) as (ingest, link),
        FleetWorker(nats_cluster.urls, ollama.url) as worker,
    ):
        polls = await send_window(link)
        # the first poll again under its link seq, as a node resends after a failover
        await ingest.commit("node-1", [(1, polls[0])])
        await until_analysed(worker, 1)
        (record,) = await finding_records(ingest._js)
        hub_exemplars = await exemplars(ingest.metrics)
        worker_exemplars = await exemplars(worker.metrics)

    traces = [json.loads(body)["traceparent"].split("-")[1] for body in polls]
    first, closing = traces[0], traces[5]
    assert record["trace_id"] == first  # the window continues its first reading's trace
    lines = log_lines.getvalue().splitlines()
    # the hub's line of the resent poll, written under its store span
    (resent,) = [line for line in lines if "node-1:1 already stored" in line]
    assert resent.endswith(f" trace_id={first}")
    # the worker's line of the finding it published, written under its finding span
    (published,) = [line for line in lines if "finding published" in line]
    assert f" {record['id']}: finding published (severity " in published
    assert published.endswith(f" trace_id={first}")
    # /metrics: the hub's store metrics and the worker's window metrics name those traces
    assert hub_exemplars["mcptool_fleet_frames_duplicate_total"] == {first}
    assert hub_exemplars["mcptool_fleet_frames_stored_total"] <= set(traces)
    assert hub_exemplars["mcptool_fleet_windows_closed_total"] == {closing}
    stored_seconds = {
        trace_id
        for name, ids in hub_exemplars.items()
        if name.startswith("mcptool_fleet_store_seconds")
        for trace_id in ids
    }
    assert stored_seconds and stored_seconds <= set(traces)
    assert worker_exemplars["mcptool_fleet_windows_analysed_total"] == {first}
    assert worker_exemplars["mcptool_fleet_findings_total"] == {first}
    model_seconds = [
        ids for name, ids in worker_exemplars.items() if name.startswith("mcptool_fleet_model")
    ]
    assert model_seconds and all(ids == {first} for ids in model_seconds)


async def test_worker_otlp_exports_and_verbose_lines_end_with_the_windows_trace_id(
    nats_cluster: NatsCluster, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    """``mcptool worker --otlp URL -v`` as a process: its finding's line names the trace
    the window continues (the hub and the node in this process, the poll's span in it)."""
    log = tmp_path / "worker.log"
    with otlp_collector() as (url, received):
        async with OllamaSimulator() as ollama, hub_with_node(nats_cluster.urls) as (ingest, link):
            worker = start_worker(nats_cluster.url, ollama.url, log, "--otlp", url, "-v")
            try:
                await send_window(link)
                await until(lambda: "finding published" in log.read_text(), 60, "a finding")
            finally:
                worker.stop()
            (record,) = await finding_records(ingest._js)
    (line,) = [line for line in log.read_text().splitlines() if "finding published" in line]
    assert line.endswith(f" trace_id={record['trace_id']}")
    exported = b"".join(body for path, body in received if path == "/v1/traces")
    assert b"fleet.window" in exported and b"mcptool-worker" in exported


def test_otlp_export_reaches_a_collector_over_http() -> None:
    """What ``--otlp URL`` installs, in a process of its own (the provider is global)."""
    with otlp_collector() as (url, received):
        script = (
            "from opentelemetry import trace\n"
            "from mcptool.fleet import tracing\n"
            f"tracing.configure({url!r}, 'mcptool-test')\n"
            "with tracing.tracer().start_as_current_span('fleet.store'):\n"
            "    pass\n"
            "trace.get_tracer_provider().shutdown()\n"
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    paths = [path for path, _ in received]
    assert paths == ["/v1/traces"]
    assert b"fleet.store" in received[0][1]
    assert b"mcptool-test" in received[0][1]
