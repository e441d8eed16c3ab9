"""The MQTT bridge's pieces: what counts as a poll, the ids it stores them under, and the
lease that lets one hub at a time bridge."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiomqtt
from nats.js.api import KeyValueConfig
from opentelemetry import trace

from mcptool.fleet import FleetIngest
from mcptool.fleet.bridge import Lease, MqttBridge, MqttPoll, mqtt_poll
from mcptool.fleet.ingest import connect
from mcptool.fleet.subjects import (
    DATA_STREAM,
    MQTT_STREAM,
    MQTT_TOPIC,
    MSG_ID,
    data_subject,
    mqtt_reading_id,
    reading_id,
)
from mcptool.fleet.tracing import inject
from simulators.nats import NatsCluster
from tests.fleet.test_proof import until
from tests.spans import Spans, recording


def message(**fields: object) -> bytes:
    poll = {"node": "plant 1", "device": "pump:2", "kind": "telemetry", "seq": 41}
    poll["ts"] = 1_764_061_200_123
    return json.dumps({**poll, **fields}).encode()


def test_a_gateways_poll_names_its_node_device_seq_and_time() -> None:
    assert mqtt_poll("fleet.mqtt.x.y", message()) == MqttPoll(
        "plant 1", "pump:2", 41, 1_764_061_200.123
    )


def test_the_subject_names_the_node_when_the_payload_does_not() -> None:
    body = json.loads(message())
    del body["node"]
    assert mqtt_poll("fleet.mqtt.plant-1.pump", json.dumps(body).encode()).node == "plant-1"


def test_what_is_no_telemetry_poll_is_refused() -> None:
    assert mqtt_poll("fleet.mqtt.n.d", b"not json") is None
    assert mqtt_poll("fleet.mqtt.n.d", message(kind="finding")) is None
    assert mqtt_poll("fleet.mqtt.n.d", message(seq=0)) is None
    assert mqtt_poll("fleet.mqtt.n.d", message(seq=True)) is None
    assert mqtt_poll("fleet.mqtt.n.d", message(ts="now")) is None
    assert mqtt_poll("fleet.mqtt.n.d", message(device="")) is None


def test_mqtt_ids_are_apart_from_each_other_and_from_the_links() -> None:
    # names that would collide if written raw: node "a/b" device "c", node "a" device "b/c"
    assert mqtt_reading_id("a/b", "c", 5) != mqtt_reading_id("a", "b/c", 5)
    # a node named like an MQTT id cannot make a link id equal to it
    assert mqtt_reading_id("x", "y", 5) == "mqtt:x/y@5"
    assert reading_id("mqtt:x/y@5", 5) != mqtt_reading_id("x", "y", 5)
    assert not mqtt_reading_id("n", "d:1", 5).rpartition(":")[2].isdigit()


async def test_one_holder_at_a_time_and_the_next_once_the_first_stops_renewing(
    nats_cluster: NatsCluster,
) -> None:
    nc = await connect(nats_cluster.urls, "lease")
    try:
        js = nc.jetstream(timeout=5)
        kv = await js.create_key_value(KeyValueConfig(bucket="LEASE_TEST", ttl=1.0, replicas=3))
        first, second = Lease(kv, "hub a", 1.0), Lease(kv, "hub b", 1.0)
        assert await first.hold()
        assert not await second.hold()
        assert await first.hold()  # still its own
        assert (await kv.get("holder")).value == b"hub a"
        # hub a stops renewing (dead): once the key expired, hub b takes it
        await until(second.hold, 10, "the lease to pass to hub b")
        assert (await kv.get("holder")).value == b"hub b"
        assert not await first.hold() and not first.valid()
    finally:
        await nc.close()


@asynccontextmanager
async def bridging(cluster: NatsCluster) -> AsyncIterator[MqttBridge]:
    """A hub's ingest and its bridge, in this process."""
    async with FleetIngest(cluster.urls, window_s=1) as ingest:
        bridge = MqttBridge(ingest, "test")
        running = asyncio.ensure_future(bridge.run())
        try:
            yield bridge
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)


async def publish(cluster: NatsCluster, topic: str, body: bytes) -> None:
    """One QoS 1 message to the MQTT listener of the cluster's first server."""
    port = cluster.nodes[0].mqtt_port or 0
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V311) as client:
        await client.publish(topic, body, 1)


async def test_a_polls_trace_continues_through_the_bridge(mqtt_cluster: NatsCluster) -> None:
    exporter = recording()
    with trace.get_tracer("test").start_as_current_span("gateway.spool") as gateway:
        traceparent = inject({})["traceparent"]
    body = message(node="plant-1", device="pump:2", traceparent=traceparent)
    async with bridging(mqtt_cluster) as bridge:
        await publish(mqtt_cluster, MQTT_TOPIC.format(node="plant-1", device="pump:2"), body)

        async def stored() -> bool:
            return bridge.bridged == 1

        await until(stored, 30, "the poll bridged")
        reading = await bridge.ingest.last_message(DATA_STREAM, data_subject("plant-1", "pump:2"))
    assert reading is not None
    spans = Spans(exporter)
    [store] = spans.named("fleet.store")
    assert spans.parent(store).context.span_id == gateway.get_span_context().span_id
    assert spans.with_traceparent(reading.headers["traceparent"]) is store
    assert reading.headers[MSG_ID] == mqtt_reading_id("plant-1", "pump:2", 41)


async def test_what_is_no_poll_leaves_the_queue_and_is_not_stored(
    mqtt_cluster: NatsCluster,
) -> None:
    async with bridging(mqtt_cluster) as bridge:
        for _ in range(3):  # a gateway's findings on the telemetry topic, say
            await publish(mqtt_cluster, "fleet/mqtt/plant-1/boiler", message(kind="finding"))
        js = bridge.ingest.js
        assert js is not None

        async def drained() -> bool:
            info = await js.stream_info(MQTT_STREAM)
            return info.state.messages == 0 and bridge.rejected == 3

        await until(drained, 30, "the messages taken")
        assert bridge.rejected == 3 and bridge.bridged == 0
        sample = bridge.ingest.metrics.registry.get_sample_value
        assert sample("mcptool_fleet_mqtt_polls_total", {"outcome": "refused"}) == 3
        assert sample("mcptool_fleet_mqtt_bridge_holding") == 1
        assert (await js.stream_info(DATA_STREAM)).state.messages == 0
