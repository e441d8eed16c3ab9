"""The MQTT destination against a real Mosquitto (and NATS's MQTT listener): its security
settings (credentials, TLS), and messages the broker will not take, which are reported as
drops and never resent forever or lost without a word."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcptool.gateway import Dropped, Gateway, parse_config
from mcptool.gateway.config import MqttConfig
from mcptool.gateway.sinks.forwarder import SinkError, SinkState
from mcptool.gateway.sinks.mqtt import (
    DISCONNECTS,
    OVER_MAX_PACKET,
    REFUSED,
    TOPIC_HANGUPS,
    MqttTransport,
)
from mcptool.gateway.spool import Kind, Record
from simulators.modbus import DeviceProfile, ModbusSimulator
from simulators.modbus import Point as SimPoint
from simulators.nats import NatsCluster
from tests.conftest import require_program
from tests.gateway.conftest import (
    Broker,
    ReadingLog,
    Subscriber,
    float_profile,
    gateway_config,
    until,
)


async def test_credentials_are_required_and_used(devices: ModbusSimulator, tmp_path: Path) -> None:
    passwd = require_program("mosquitto_passwd", "mosquitto")
    password_file = tmp_path / "passwords"
    subprocess.run([passwd, "-b", "-c", str(password_file), "gateway", "s3cret"], check=True)
    password_file.chmod(0o600)
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = Broker(require_program("mosquitto"), workdir, password_file)
    await broker.started()
    try:
        raw = gateway_config(devices, tmp_path, mqtt_port=broker.port)
        raw["mqtt"].update(username="gateway", password="wrong")
        async with Gateway(parse_config(raw)) as gw:
            sink = gw.forwarders[0]
            await until(lambda: sink.last_error != "", what="a refused connect")
            assert sink.state is not SinkState.CONNECTED
            assert "authori" in sink.last_error.lower()
        raw["spool"]["path"] = str(tmp_path / "second.db")
        raw["mqtt"]["password"] = "s3cret"
        async with Gateway(parse_config(raw)) as gw:
            await until(lambda: gw.forwarders[0].acked >= 10, what="delivery with credentials")
    finally:
        broker.stop()


async def test_tls_to_the_broker_verifies_its_certificate(
    devices: ModbusSimulator, tmp_path: Path
) -> None:
    openssl = require_program("openssl")
    cert, key = tmp_path / "broker.pem", tmp_path / "broker.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = Broker(
        require_program("mosquitto"), workdir, listener_options=f"certfile {cert}\nkeyfile {key}\n"
    )
    await broker.started()
    try:
        raw = gateway_config(devices, tmp_path, mqtt_port=broker.port)
        raw["mqtt"].update(tls=True)  # the system CAs do not know this certificate
        async with Gateway(parse_config(raw)) as gw:
            await until(lambda: "certificate" in gw.forwarders[0].last_error.lower())
            assert gw.forwarders[0].acked == 0
        raw["mqtt"].update(ca_file=str(cert))
        raw["spool"]["path"] = str(tmp_path / "second.db")
        async with Gateway(parse_config(raw)) as gw:
            await until(lambda: gw.forwarders[0].acked >= 10, what="delivery over TLS")
        # tls_insecure: encrypted, the certificate not checked (a lab broker)
        raw["mqtt"] = {**raw["mqtt"], "ca_file": None, "tls_insecure": True}
        raw["spool"]["path"] = str(tmp_path / "third.db")
        async with Gateway(parse_config(raw)) as gw:
            await until(lambda: gw.forwarders[0].acked >= 10, what="delivery, not verified")
    finally:
        broker.stop()


async def test_records_go_to_the_topic_of_their_kind(
    broker: Broker,
) -> None:
    """A finding about ``boiler`` is published on ``mcptool/<node>/boiler/analysis``, not
    under the telemetry topic: by the record's kind, whatever its payload says."""
    transport = MqttTransport(MqttConfig(host="127.0.0.1", port=broker.port), "plant-1")
    received: dict[str, bytes] = {}
    async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
        await subscriber.subscribe("mcptool/+/+/+", qos=1)
        await transport.connect()
        try:
            await transport.send(Record(1, "boiler", 1, 2, 0.0, b'{"readings":[]}'))
            finding = Record(2, "boiler", 1, 1, 0.0, b'{"type":"finding"}', Kind.FINDING)
            await transport.send(finding)
        finally:
            await transport.close()
        async with asyncio.timeout(10):
            async for message in subscriber.messages:
                if not str(message.topic).endswith("/status"):
                    received[str(message.topic)] = message.payload  # type: ignore[assignment]
                if len(received) == 2:
                    break
    assert received == {
        "mcptool/plant-1/boiler/telemetry": b'{"readings":[]}',
        "mcptool/plant-1/boiler/analysis": b'{"type":"finding"}',
    }


def test_the_analysis_topic_template_is_configurable() -> None:
    config = MqttConfig(analysis_topic="site/{node}/findings/{device}")
    transport = MqttTransport(config, "plant-1")
    assert transport.topic("boiler", Kind.FINDING) == "site/plant-1/findings/boiler"
    assert transport.topic("boiler") == "mcptool/plant-1/boiler/telemetry"
    assert transport.topic("boiler/analysis") == "mcptool/plant-1/boiler/analysis/telemetry"
    assert transport.topic("boiler", Kind.FINDING, node="plant-2") == "site/plant-2/findings/boiler"


# -- messages the broker will not take --------------------------------------------------

LIMIT = 1400  # bytes: above a poll of 10 floats (~1100), below one 250-character label


def labelled_d0() -> DeviceProfile:
    """d0 with 10 floats and a 250-character "label" of control bytes: 1500 bytes of JSON
    escapes, so its reading alone is a message over ``LIMIT``."""
    d0 = float_profile("d0", 10)
    d0.points.append(SimPoint("holding", 100, "string", value="\x01" * 250, length=125))
    return d0


class Watched:
    """A gateway whose drops are recorded as they are reported, and what a subscriber and
    ``/metrics`` say about them."""

    def __init__(self, gw: Gateway, subscriber: Subscriber) -> None:
        self.gw = gw
        self.subscriber = subscriber
        self.reported: list[Dropped] = []
        publish = gw.spool.on_drop
        assert publish is not None
        gw.spool.on_drop = lambda d: (self.reported.append(d), publish(d))  # type: ignore[func-returns-value]

    def dropped(self, final: dict[str, int] | None = None) -> set[tuple[str, int]]:
        """(device, seq) of every reading reported dropped; with ``final``, of those up to
        it only (the gateway goes on polling, and dropping, after ``settle``)."""
        return {
            (d.device, s)
            for d in self.reported
            for s in range(d.seq_first, d.seq_last + 1)
            if final is None or s <= final[d.device]
        }

    def produced(self) -> dict[str, int]:
        return {d.name: self.gw.spool.last_seq(d.name) for d in self.gw.config.devices}

    def missing(self, final: dict[str, int]) -> set[tuple[str, int]]:
        return {(d, s) for d, seqs in self.subscriber.missing(final).items() for s in seqs}

    def published(self, device: str) -> int:
        status = self.subscriber.retained.get("mcptool/test/status", {})
        return int(status.get("sinks", {}).get("mqtt", {}).get("dropped", {}).get(device, 0))

    async def scraped(self, device: str, kind: str) -> float:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{self.gw.metrics_port}/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = {"device": device, "where": "mqtt", "reason": kind}
                if sample.name == "mcptool_gateway_dropped_readings_total" and (
                    labels.items() <= sample.labels.items()
                ):
                    return float(sample.value)
        return 0.0

    async def settle(self) -> dict[str, int]:
        """Everything produced so far delivered or reported; what was produced."""
        await self.gw.wait_delivered()
        final = self.produced()
        await until(lambda: self.missing(final) <= self.dropped(), what="the rest delivered")
        return final


async def mosquitto(tmp_path: Path, options: str, **settings: Any) -> Broker:
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = Broker(require_program("mosquitto"), workdir, listener_options=options, **settings)
    await broker.started()
    return broker


@pytest.mark.parametrize(
    ("broker_limit", "mqtt", "kind"),
    [
        # announced in the CONNACK: cut before sending
        ("max_packet_size", {}, OVER_MAX_PACKET),
        # MQTT 3.1.1 cannot announce it: Mosquitto resets the connection
        ("max_packet_size", {"protocol": "3.1.1"}, DISCONNECTS),
        # not announced: Mosquitto 2.0.11 disconnects an MQTT 5 client ("protocol error")
        ("message_size_limit", {}, DISCONNECTS),
        # Mosquitto acknowledges and discards it (MQTT 3.1.1): only the setting helps
        ("message_size_limit", {"protocol": "3.1.1", "max_packet_size": LIMIT}, OVER_MAX_PACKET),
    ],
    ids=["max_packet_size-5", "max_packet_size-3.1.1", "message_size_limit-5", "configured"],
)
async def test_a_reading_over_the_brokers_size_limit_is_reported_and_the_rest_delivered(
    tmp_path: Path, broker_limit: str, mqtt: dict[str, Any], kind: str
) -> None:
    broker = await mosquitto(tmp_path, f"{broker_limit} {LIMIT}\n")
    subscriber = Subscriber(port=broker.port)
    await subscriber.start()
    try:
        async with ModbusSimulator([labelled_d0(), float_profile("d1", 10)]) as sim:
            raw = gateway_config(sim, tmp_path, mqtt_port=broker.port, metrics={"port": 0})
            raw["mqtt"].update(mqtt)
            raw["devices"][0]["points"].append(
                {"name": "label", "address": 100, "type": "string", "length": 250}
            )
            watched = Watched(Gateway(parse_config(raw)), subscriber)
            async with watched.gw as gw:
                sink = gw.forwarders[0]
                label_drops = lambda: gw.spool.sink_dropped("mqtt").get("d0", 0)  # noqa: E731
                await until(lambda: label_drops() >= 1, timeout=30, what="a first drop")
                connects = sink.connects
                await until(lambda: label_drops() >= 20, what="more drops")
                # the sink does not loop: it knows the limit now and stays connected
                assert sink.connects == connects
                assert sink.state is SinkState.CONNECTED
                counted = await watched.scraped("d0", kind)
                assert counted >= 20
                mqtt_status = next(s for s in gw.status()["sinks"] if s["name"] == "mqtt")
                assert mqtt_status["dropped"] >= counted
                await until(lambda: watched.published("d0") >= counted, what="the status")
                final = await watched.settle()
    finally:
        await subscriber.stop()
        broker.stop()
    # exactly the labels (every 11th reading of d0) did not arrive, and each was reported
    labels = {("d0", seq) for seq in range(11, final["d0"] + 1, 11)}
    assert watched.missing(final) == labels
    assert watched.dropped(final) == labels
    assert {(d.where, d.kind) for d in watched.reported} == {("mqtt", kind)}
    assert final["d1"] > 100 and subscriber.conflicting == []


async def test_a_topic_the_broker_does_not_authorize_is_reported_not_resent(
    devices: ModbusSimulator, tmp_path: Path
) -> None:
    """Mosquitto answers an MQTT 5 publish its ACL denies with PUBACK 0x87 (to an MQTT
    3.1.1 client it says success and discards it): the broker will never take it."""
    acl = tmp_path / "acl"
    acl.write_text(
        "topic read mcptool/#\n"
        "topic write mcptool/test/status\n"
        "topic write mcptool/test/+/status\n"
        "topic write mcptool/test/d1/telemetry\n"
    )
    # (with max_queued_messages 0, as elsewhere in these tests, Mosquitto 2.0.11 also
    # closes the connection after each refusal: see the next test)
    broker = await mosquitto(tmp_path, f"acl_file {acl}\n", max_queued_messages=1000)
    subscriber = Subscriber(port=broker.port)
    await subscriber.start()
    try:
        raw = gateway_config(devices, tmp_path, mqtt_port=broker.port)
        watched = Watched(Gateway(parse_config(raw)), subscriber)
        async with watched.gw as gw:
            await until(lambda: gw.spool.sink_dropped("mqtt").get("d2", 0) >= 100)
            final = await watched.settle()
            assert gw.forwarders[0].connects == 1
    finally:
        await subscriber.stop()
        broker.stop()
    refused = {(d, seq) for d in ("d0", "d2") for seq in range(1, final[d] + 1)}
    assert watched.missing(final) == refused
    assert watched.dropped(final) == refused
    assert {d.kind for d in watched.reported} == {REFUSED}
    assert "Not authorized (0x87)" in watched.reported[0].reason
    assert subscriber.count("d1") == final["d1"]


async def test_a_refused_message_is_not_sent_again_when_the_broker_then_hangs_up(
    tmp_path: Path,
) -> None:
    """Mosquitto 2.0.11 with max_queued_messages 0 closes an MQTT 5 connection right after
    a refusing PUBACK, before the forwarder has counted the record as done, so it comes
    again after the reconnect: it is neither published nor reported a second time."""
    acl = tmp_path / "acl"
    acl.write_text("topic write mcptool/test/status\ntopic write mcptool/test/d1/telemetry\n")
    broker = await mosquitto(tmp_path, f"acl_file {acl}\n", max_queued_messages=0)
    reported: list[Dropped] = []
    transport = MqttTransport(MqttConfig(port=broker.port), "test", on_drop=reported.append)
    denied = Record(1, "d0", 1, 3, 0.0, b'{"readings":[]}')
    try:
        await transport.connect()
        await transport.send(denied)
        with pytest.raises(SinkError, match="connection lost"):
            async with asyncio.timeout(10):
                await transport.watch()
        await transport.close()
        await transport.connect()
        await transport.send(denied)  # as the forwarder would, from its position
        await transport.send(Record(2, "d1", 1, 1, 0.0, b'{"readings":[]}'))
    finally:
        await transport.close()
        broker.stop()
    assert [(d.device, d.seq_first, d.seq_last, d.kind) for d in reported] == [
        ("d0", 1, 3, REFUSED)
    ]


@pytest.mark.timeout(120)
async def test_a_topic_nats_hangs_up_on_is_reported_and_the_other_devices_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """NATS's MQTT listener (2.9, MQTT 3.1.1) closes the connection on a topic holding '.':
    device d.1's readings, and its status, hang it up each time, at sizes it takes from
    device ok. They are reported as drops naming the topic, with one warning saying what
    to do, and ok's readings all arrive in NATS on one connection from then on."""
    require_program("nats-server")
    cluster = NatsCluster(tmp_path / "nats", 3, mqtt=True).start()
    arrived = ReadingLog()
    client = None
    try:
        await cluster.ready()
        client = await nats.connect(cluster.nodes[0].url)

        async def take(msg: nats.aio.msg.Msg) -> None:
            arrived.take(json.loads(msg.data))

        await client.subscribe("fleet.mqtt.>", cb=take)
        await client.flush()
        async with ModbusSimulator([float_profile("d.1", 2), float_profile("ok", 2)]) as sim:
            raw = gateway_config(sim, tmp_path, mqtt_port=cluster.nodes[0].mqtt_port)
            raw["devices"][0]["name"], raw["devices"][1]["name"] = "d.1", "ok"
            raw["mqtt"].update({"protocol": "3.1.1", "topic": "fleet/mqtt/{node}/{device}"})
            reported: list[Dropped] = []
            async with Gateway(parse_config(raw)) as gw:
                publish = gw.spool.on_drop
                assert publish is not None
                gw.spool.on_drop = lambda d: (reported.append(d), publish(d))  # type: ignore[func-returns-value]
                sink = gw.forwarders[0]
                dropped = lambda: gw.spool.sink_dropped("mqtt").get("d.1", 0)  # noqa: E731
                await until(lambda: dropped() >= 20, timeout=60, what="d.1 dropped")
                connects, seen = sink.connects, dropped()
                await until(lambda: dropped() >= seen + 100, what="more drops")
                # given up on that topic: no more hangups, the sink delivers
                assert sink.connects == connects
                assert sink.state is SinkState.CONNECTED
                await gw.wait_delivered()
                final = {d.name: gw.spool.last_seq(d.name) for d in gw.config.devices}
                await until(lambda: arrived.missing({"ok": final["ok"]}) == {}, what="ok")
    finally:
        if client is not None:
            await client.close()
        cluster.stop()
    assert arrived.count("d.1") == 0 and arrived.conflicting == []
    drops = {(d.device, s) for d in reported for s in range(d.seq_first, d.seq_last + 1)}
    # reported from the first reading on (those before the wrapper was set were counted)
    assert {s for _, s in drops} >= set(range(seen + 1, final["d.1"] + 1))
    assert {d.device for d in reported} == {"d.1"}
    assert {(d.where, d.kind) for d in reported} == {("mqtt", TOPIC_HANGUPS)}
    assert "'fleet/mqtt/test/d.1'" in reported[0].reason
    counted = gw.spool.sink_dropped("mqtt")
    assert counted.keys() == {"d.1"} and counted["d.1"] >= final["d.1"]  # every one of d.1's
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "mcptool.gateway.sinks.mqtt" and r.levelname == "WARNING"
    ]
    given_up = [w for w in warnings if "nothing more is sent on that topic" in w]
    assert len(given_up) == 2  # the telemetry topic and the status topic, once each
    assert any("'fleet/mqtt/test/d.1'" in w and "rename" in w for w in given_up)
    assert any("'mcptool/test/d.1/status'" in w for w in given_up)
