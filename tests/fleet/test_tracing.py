"""One trace from a gateway's poll to its window's finding: the gateway's poll, spool
commit and uplink send, the hub's store, the worker's window, the model call and the
finding, every span present and parented."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mcptool.fleet import FleetIngest, FleetWorker, tracing
from mcptool.gateway import Gateway, parse_config
from mcptool.link import LinkClient, LinkServer
from simulators.modbus import DeviceProfile, ModbusSimulator
from simulators.modbus import Point as SimPoint
from simulators.nats import NatsCluster
from simulators.ollama import OllamaSimulator
from tests.fleet.conftest import KEYS, until_analysed
from tests.fleet.stream_reader import finding_records, messages
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


async def test_a_reading_is_traced_from_poll_to_finding(
    nats_cluster: NatsCluster, spans: InMemorySpanExporter
) -> None:
    gateway = trace.get_tracer("test.gateway")
    async with (
        OllamaSimulator() as ollama,
        FleetIngest(nats_cluster.urls, window_s=5) as ingest,
        LinkServer(
            "127.0.0.1", 0, KEYS, commit=ingest.commit, resume_point=ingest.resume_point
        ) as hub,
        LinkClient(hub.url, "node-1", KEYS["node-1"]) as link,
        FleetWorker(nats_cluster.urls, ollama.url) as worker,
    ):
        for i in range(6):  # a window of five polls, and the one that closes it
            with gateway.start_as_current_span("gateway.poll"):
                await link.send(poll(BASE_MS + i * 1000, tracing.inject({})["traceparent"]))
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
