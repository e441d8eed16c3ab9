"""The gateway's spans ([tracing]): a poll, the spool commit that holds it and the uplink
send are one trace, which the message carries on to the hub; logs and /metrics name it;
without [tracing] nothing changes."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from mcptool.errors import UsageError
from mcptool.gateway import Gateway, parse_config
from mcptool.gateway.config import TracingConfig
from mcptool.gateway.spool import Dropped, Record
from mcptool.gateway.tracing import GatewayTracing
from mcptool.link import LinkServer
from mcptool.modbus.poller import PollResult
from mcptool.modbus.registermap import DataType, Point, Table
from mcptool.tracing import TraceIds
from simulators.modbus import ModbusSimulator
from tests.gateway.conftest import KEY, gateway_config, toml, until
from tests.gateway.test_gateway import junk_label_profile, with_junk_label
from tests.spans import Spans, otlp_collector, recording

ROOT = Path(__file__).resolve().parents[2]


class BodyHub:
    """A hub that keeps every message it receives, as it came."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.server = LinkServer("127.0.0.1", 0, {"test": KEY.encode()}, on_data=self._take)

    def _take(self, node: str, seq: int, body: bytes) -> None:
        self.bodies.append(body)

    @property
    def port(self) -> int:
        return self.server.address[1]

    def messages(self) -> list[dict[str, object]]:
        return [json.loads(body) for body in self.bodies]


@pytest.fixture
async def hub() -> AsyncIterator[BodyHub]:
    body_hub = BodyHub()
    async with body_hub.server:
        yield body_hub


async def test_a_poll_its_spool_commit_and_its_uplink_send_are_one_trace_the_hub_continues(
    devices: ModbusSimulator, hub: BodyHub, tmp_path: Path
) -> None:
    exporter = recording()
    raw = gateway_config(
        devices, tmp_path, mqtt_port=None, uplink={"url": hub.server.url, "key": KEY},
        tracing={}, metrics={"port": 0},
    )  # fmt: skip
    async with Gateway(parse_config(raw)) as gw:
        await until(lambda: len(hub.bodies) >= 9, what="nine polls at the hub")
        async with httpx.AsyncClient() as client:
            reply = await client.get(
                f"http://127.0.0.1:{gw.metrics_port}/metrics",
                headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            )
    spans = Spans(exporter)
    traces = set()
    for message in hub.messages()[:9]:
        # the message names the link span, whose parents are the spool commit and the poll
        link = spans.with_traceparent(str(message["traceparent"]))
        spool = spans.parent(link)
        poll = spans.parent(spool)
        assert [poll.name, spool.name, link.name] == [
            "gateway.poll",
            "gateway.spool",
            "gateway.link",
        ]
        assert (poll.kind, link.kind) == (SpanKind.CLIENT, SpanKind.PRODUCER)
        assert poll.parent is None  # a poll starts its trace
        assert poll.attributes is not None and spool.attributes is not None
        assert poll.attributes["mcp.device"] == message["device"]
        assert poll.attributes["mcp.seq_first"] == message["seq"]
        assert spool.attributes["gateway.spool.batch"] >= 1  # ended by its commit
        assert poll.status.status_code is StatusCode.UNSET  # every point answered
        assert link.status.status_code is StatusCode.UNSET
        traces.add(poll.context.trace_id)
    assert len(traces) == 9  # a trace per poll
    # /metrics (OpenMetrics) names traced polls as exemplars of their count and duration
    exemplars = {
        (sample.name, sample.exemplar.labels["trace_id"])
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
        if sample.exemplar is not None
    }
    traced = {format(span.context.trace_id, "032x") for span in spans.named("gateway.poll")}
    names = {name for name, trace_id in exemplars if trace_id in traced}
    assert "mcptool_gateway_polls_total" in names
    assert any(name.startswith("mcptool_gateway_poll_duration_seconds") for name in names)


async def test_without_tracing_no_span_is_made_and_the_message_has_no_traceparent(
    devices: ModbusSimulator, hub: BodyHub, tmp_path: Path
) -> None:
    exporter = recording()
    raw = gateway_config(
        devices, tmp_path, mqtt_port=None, uplink={"url": hub.server.url, "key": KEY}
    )
    async with Gateway(parse_config(raw)) as gw:
        assert gw.tracing is None
        await until(lambda: len(hub.bodies) >= 3, what="three polls at the hub")
    assert all(b"traceparent" not in body for body in hub.bodies)
    assert [s.name for s in exporter.get_finished_spans() if s.name.startswith("gateway.")] == []


# -- one piece: GatewayTracing ---------------------------------------------------------------

POINTS = (
    Point("temperature", Table.HOLDING, 0, DataType.FLOAT32),
    Point("pressure", Table.HOLDING, 2, DataType.FLOAT32),
)


def poll_result(errors: dict[int, str] | None = None) -> PollResult:
    values: list[float | None] = [21.5, 1.2]
    for i in errors or {}:
        values[i] = None
    return PollResult("boiler", 1_700_000_000.0, POINTS, values, errors or {}, 0.004)  # type: ignore[arg-type]


def test_a_poll_with_a_bad_point_is_an_error_span_naming_it() -> None:
    exporter = recording()
    tracing = GatewayTracing(TracingConfig(), "edge")
    traced = tracing.poll(poll_result({1: "exception 0x02 illegal data address"}), 7)
    assert traced is not None
    (poll,) = Spans(exporter).named("gateway.poll")
    assert poll.status.status_code is StatusCode.ERROR
    assert poll.status.description == "bad points: pressure (exception 0x02 illegal data address)"
    # timed as the poller measured it, not when its result arrived
    assert poll.start_time == 1_700_000_000 * 10**9
    assert poll.end_time == poll.start_time + 4_000_000
    tracing.close()


def test_a_spool_span_ends_with_its_commit_or_as_an_error_with_its_drop_or_the_stop() -> None:
    exporter = recording()
    tracing = GatewayTracing(TracingConfig(), "edge")
    committed, dropped, stopped = (tracing.poll(poll_result(), seq) for seq in (1, 3, 5))
    assert committed is not None and dropped is not None and stopped is not None
    tracing.committed([Record(1, "boiler", 1, 2, 0.0, b"")])
    tracing.dropped(Dropped("boiler", 3, 4, "spool full"))
    assert [s.name for s in exporter.get_finished_spans()].count("gateway.spool") == 2
    tracing.close()
    spools = {s.attributes["mcp.seq_first"]: s for s in Spans(exporter).named("gateway.spool")}  # type: ignore[index]
    assert spools[1].status.status_code is StatusCode.UNSET
    assert spools[3].status.description == "spool full: dropped boiler seq 3-4"
    assert spools[5].status.description == "the gateway stopped before the commit"
    # each message carries its spool span's context
    assert committed.traceparent.split("-")[2] == format(spools[1].context.span_id, "016x")


def test_a_message_goes_on_with_the_link_spans_traceparent_of_the_same_length() -> None:
    recording()
    tracing = GatewayTracing(TracingConfig(), "edge")
    traced = tracing.poll(poll_result(), 1)
    assert traced is not None
    body = b'{"device":"boiler","ts":1,"traceparent":"' + traced.traceparent.encode() + b'"}'
    record = Record(1, "boiler", 1, 2, 0.0, body)
    with tracing.link(record, "mcp://hub:7878") as span:
        assert span is not None
        sent = tracing.relabel(body, span)
    assert len(sent) == len(body)
    assert json.loads(sent)["traceparent"].split("-")[1] == traced.traceparent.split("-")[1]
    assert json.loads(sent)["traceparent"] != traced.traceparent
    with tracing.link(Record(2, "boiler", 3, 2, 0.0, b'{"device":"boiler"}'), "x") as none:
        assert none is None  # a record polled untraced (before [tracing] was on)
    tracing.close()


def sampled(traceparent: str) -> bool:
    return bool(int(traceparent.rsplit("-", 1)[1], 16) & 0x01)


def test_a_poll_the_sampler_leaves_out_passes_that_decision_on_and_records_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a provider of its own (an endpoint) samples; one poll in 10^9 is as good as none
    config = TracingConfig(endpoint="http://127.0.0.1:9", sample_ratio=1e-9)
    tracing = GatewayTracing(config, "edge")
    traced = tracing.poll(poll_result(), 1)
    assert traced is not None and traced.exemplar is None
    # its flags say "not sampled": the hub's ParentBased sampler drops it too
    assert not sampled(traced.traceparent)
    record = Record(
        1, "boiler", 1, 2, 0.0, b'{"traceparent":"' + traced.traceparent.encode() + b'"}'
    )
    with tracing.link(record, "mcp://hub:7878") as span:
        assert span is not None
        sent = tracing.relabel(record.payload, span)
    assert not sampled(json.loads(sent)["traceparent"])
    caplog.handler.addFilter(TraceIds())
    with caplog.at_level(logging.WARNING), tracing.current(traced):
        logging.getLogger("mcptool.gateway.gateway").warning("spool full")
    assert caplog.records[0].trace == ""  # type: ignore[attr-defined]  # no trace to lead to
    tracing.close()  # nothing was recorded: nothing is sent to the (absent) collector


def test_a_line_logged_while_a_traced_poll_is_handled_ends_with_its_trace_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recording()
    tracing = GatewayTracing(TracingConfig(), "edge")
    traced = tracing.poll(poll_result(), 1)
    assert traced is not None
    caplog.handler.addFilter(TraceIds())
    log = logging.getLogger("mcptool.gateway.gateway")
    with caplog.at_level(logging.WARNING), tracing.current(traced):
        log.warning("spool full: dropped boiler seq 1-2")
    log.warning("outside")
    inside, outside = caplog.records
    assert inside.trace == f" trace_id={traced.exemplar['trace_id']}"  # type: ignore[attr-defined]
    assert outside.trace == ""  # type: ignore[attr-defined]
    tracing.close()


# -- the command: an OTLP collector of the config's, and the log lines ------------------------


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    with otlp_collector() as (url, received):
        yield url, received


async def test_gateway_run_exports_to_the_configured_collector_and_logs_the_trace_of_a_drop(
    hub: BodyHub, collector: tuple[str, list[tuple[str, bytes]]], tmp_path: Path
) -> None:
    url, received = collector
    async with ModbusSimulator([junk_label_profile()]) as sim:
        tracing = {"endpoint": url, "service": "plant-7"}
        raw = with_junk_label(sim, tmp_path, hub, mqtt_port=None, tracing=tracing)  # type: ignore[arg-type]
        config = tmp_path / "gateway.toml"
        config.write_text(toml(raw))
        command = [sys.executable, "-m", "mcptool", "gateway", "run", "--config", str(config)]
        gateway = await asyncio.create_subprocess_exec(
            *command, "--no-status", cwd=ROOT, stderr=asyncio.subprocess.PIPE
        )
        try:
            await until(lambda: len(hub.bodies) >= 5, timeout=30, what="polls at the hub")
        finally:
            gateway.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(gateway.communicate(), 20)
    assert gateway.returncode == 0, stderr.decode()
    # the label (seq 11) is over the 512-byte frame: the uplink drops it while sending its
    # poll, and says so in a line that names the poll's trace
    (line,) = [line for line in stderr.decode().splitlines() if "dropped d0 seq 11-11" in line]
    trace_id = line.rsplit(" trace_id=", 1)[1]
    first = next(m for m in hub.messages() if m["seq"] == 1)
    assert str(first["traceparent"]).split("-")[1] == trace_id
    # the spans went to the config's collector, under the config's service name
    assert {path for path, _ in received} == {"/v1/traces"}
    exported = b"".join(body for _, body in received)
    for name in (b"gateway.poll", b"gateway.spool", b"gateway.link", b"plant-7"):
        assert name in exported
    assert bytes.fromhex(trace_id) in exported


async def test_a_gateway_that_cannot_start_shuts_its_span_exporter_down(
    devices: ModbusSimulator, hub: BodyHub, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        raw = gateway_config(
            devices, tmp_path, mqtt_port=None, uplink={"url": hub.server.url, "key": KEY},
            tracing={"endpoint": "http://127.0.0.1:9"},
            metrics={"port": taken.getsockname()[1]},
        )  # fmt: skip
        gw = Gateway(parse_config(raw))
        assert gw.tracing is not None and gw.tracing._provider is not None
        with pytest.raises(UsageError):
            await gw.start()
    assert gw.tracing._provider is None  # its export thread is gone with it
