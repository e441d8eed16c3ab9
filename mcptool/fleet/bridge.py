"""The second way into the fleet: gateways publish their polls to NATS's MQTT listener,
and one hub at a time moves them into ``FLEET_DATA``, closing windows as the hubs do.

Why a step between NATS's MQTT listener and ``FLEET_DATA`` (measured on nats-server
2.9.10, docs/FLEET.md "Two paths"): an MQTT 3.1.1 PUBLISH carries a topic and a payload
and nothing else, and NATS stores it with the one header ``Nmqtt-Pub`` and no message id,
so a QoS 1 message the gateway sends again (a lost PUBACK, a reconnect, a restart) would
be stored twice; and no message of that path passes a hub, so no hub would close its
windows. The poll's payload does say who it is: ``node``, ``device`` and ``seq`` (the
device's sequence number of its first reading, never reused). So gateways publish to
``fleet/mqtt/<node>/<device>`` (the stream ``FLEET_MQTT`` holds them), and the bridge
stores each poll on ``fleet.data.<node>.dev.<device>`` (the names from the payload,
escaped like the hubs' subjects) with the message id ``mqtt:<node>/<device>@<seq>``, so
JetStream drops a resent poll, and closes windows with a :class:`Windower`.

Order matters for windows, so one hub at a time bridges: it holds a lease, a key in the
bucket ``FLEET_BRIDGE`` whose entries expire after ``bridge_lease_s``, renewed while it
works. Every hub runs a bridge; the others wait for the key to expire. A message is
acknowledged (and leaves ``FLEET_MQTT``) only once its reading is stored; one a dead
holder took is given again after as long as the lease, before any newer one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import NamedTuple

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, PubAck
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from opentelemetry.trace import SpanKind

from mcptool.fleet import tracing
from mcptool.fleet.ingest import FleetIngest, poll_in, retry, telemetry_of
from mcptool.fleet.streams import ensure_consumer
from mcptool.fleet.subjects import (
    BRIDGE,
    BRIDGE_BUCKET,
    HEADER_DEVICE,
    HEADER_NODE,
    MQTT_STREAM,
    MSG_ID,
    mqtt_reading_id,
)
from mcptool.fleet.windower import Windower
from mcptool.fleet.windows import WindowTracker

__all__ = ["Lease", "MqttBridge", "MqttPoll", "mqtt_poll"]

log = logging.getLogger(__name__)

_LEASE_KEY = "holder"


class MqttPoll(NamedTuple):
    node: str
    device: str
    seq: int
    ts: float  # seconds
    traceparent: str | None = None  # of a gateway that traces its polls


def mqtt_poll(subject: str, body: bytes) -> MqttPoll | None:
    """What a message of ``fleet.mqtt.<node>.<device>`` is: a gateway's telemetry poll
    (names from the payload, the subject's where it has none), or None."""
    message = telemetry_of(body)
    poll = None if message is None else poll_in(message)
    if message is None or poll is None or not poll.device:
        return None
    parts = subject.split(".")
    node = message.get("node", parts[2] if len(parts) == 4 else None)
    seq = message.get("seq")
    if not (isinstance(node, str) and node):
        return None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return None
    return MqttPoll(node, poll.device, seq, poll.ts, poll.traceparent)


class Lease:
    """Holding the key ``holder`` of a bucket whose entries expire after ``ttl_s``.

    ``hold()`` takes the key if nobody holds it (create: only if absent) or renews it
    (update: only at the revision this holder wrote), a third of ``ttl_s`` apart. A holder
    that could not renew for half of ``ttl_s`` stops counting itself the holder before
    the key can expire and another can take it.
    """

    def __init__(
        self,
        kv: KeyValue,
        owner: str,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kv = kv
        self.owner = owner.encode()
        self.ttl_s = ttl_s
        self._clock = clock
        self._revision: int | None = None
        self._renewed = 0.0

    def valid(self) -> bool:
        return self._revision is not None and self._clock() - self._renewed < self.ttl_s / 2

    async def hold(self) -> bool:
        now = self._clock()
        if self._revision is not None and now - self._renewed < self.ttl_s / 3:
            return True
        try:
            if self._revision is None:
                revision = await self.kv.create(_LEASE_KEY, self.owner)
            else:
                revision = await self.kv.update(_LEASE_KEY, self.owner, last=self._revision)
        except KeyWrongLastSequenceError:
            self._revision = None  # another holds it (or took it after ours expired)
            return False
        except Exception as exc:  # the cluster is moving: keep what is still ours
            log.info("bridge lease not renewed: %r", exc)
            return self.valid()
        self._revision, self._renewed = revision, now
        return True


class MqttBridge:
    """Runs beside a hub's :class:`FleetIngest`, on its NATS connection."""

    def __init__(self, ingest: FleetIngest, owner: str) -> None:
        self.ingest = ingest
        self.owner = owner
        self.settings = ingest.settings
        self.windower = Windower(
            WindowTracker(ingest.windows.window_s, ingest.windows.grace_s),
            self._publish,
            ingest.last_message,
            on_closed=ingest.count_window,
            on_late=ingest.metrics.late.inc,
        )
        self._polls = ingest.metrics.mqtt_polls
        self.holding = False
        self.bridged = 0  # readings stored
        self.duplicates = 0  # readings JetStream already held (a resent poll)
        self.rejected = 0  # messages that are no telemetry poll (acknowledged, logged)
        self._refused_subjects: set[str] = set()  # logged once each, not per message

    @property
    def _js(self) -> JetStreamContext:
        if self.ingest.js is None:
            raise RuntimeError("start() the ingest first")
        return self.ingest.js

    async def _publish(
        self, subject: str, body: bytes, headers: dict[str, str], reading: bool
    ) -> PubAck:
        js = self._js
        ack: PubAck = await retry(
            lambda: js.publish(subject, body, headers=headers), self.ingest.publish_deadline_s
        )
        if reading:
            if ack.duplicate:
                self.duplicates += 1
                self._polls.labels("duplicate").inc()
            else:
                self.bridged += 1
                self._polls.labels("stored").inc()
        return ack

    async def _bucket(self) -> KeyValue:
        try:
            return await self._js.key_value(BRIDGE_BUCKET)
        except BucketNotFoundError:
            config = KeyValueConfig(
                bucket=BRIDGE_BUCKET,
                ttl=self.settings.bridge_lease_s,
                replicas=self.settings.replicas,
            )
            return await self._js.create_key_value(config)

    async def run(self) -> None:
        """Bridge whenever this hub holds the lease, until cancelled."""
        await ensure_consumer(self._js, self.settings, stream=MQTT_STREAM)
        lease = Lease(await self._bucket(), self.owner, self.settings.bridge_lease_s)
        subscription = await self._js.pull_subscribe_bind(BRIDGE, stream=MQTT_STREAM)
        wait = min(1.0, self.settings.bridge_lease_s / 4)
        ticked = time.monotonic()
        settled = 0.0  # no fetch before: messages taken and not acknowledged come first
        while True:
            if not await lease.hold():
                self._let_go()
                await asyncio.sleep(wait)
                continue
            if not self.holding:
                log.warning("bridging MQTT readings into the fleet (%s)", self.owner)
                self.holding = True
                self.ingest.metrics.bridge_holding.set(1)
                settled = await self._settle()
            if time.monotonic() < settled:
                await asyncio.sleep(wait)
                continue
            try:
                messages = await subscription.fetch(self.settings.bridge_batch, timeout=wait)
            except (NatsTimeout, TimeoutError):
                messages = []
            except Exception as exc:  # the server is moving: ask again
                log.info("bridge fetch: %r", exc)
                messages = []
            try:
                for message in messages:
                    if not lease.valid():
                        raise RuntimeError("the lease ran out")
                    await self.handle(message)
                if time.monotonic() - ticked >= wait:
                    ticked = time.monotonic()
                    await self.windower.tick()
            except Exception as exc:
                log.warning("bridge: %r; the messages not acknowledged come again", exc)
                self.windower.tracker.clear()
                settled = time.monotonic() + self.settings.bridge_lease_s

    async def _settle(self) -> float:
        """Until when to wait before the first fetch as the new holder: if a holder before
        this one took messages and died, JetStream gives them again after ``ack_wait``
        (the lease's length), and then before newer ones, so readings keep their order."""
        info = await retry(
            lambda: self._js.consumer_info(MQTT_STREAM, BRIDGE), self.ingest.publish_deadline_s
        )
        pending = info.num_ack_pending or 0
        return time.monotonic() + (self.settings.bridge_lease_s if pending else 0.0)

    def _let_go(self) -> None:
        """Not (or no longer) the holder: another hub bridges, this tracker goes stale."""
        if self.holding:
            log.warning("another hub bridges MQTT readings now")
        self.holding = False
        self.ingest.metrics.bridge_holding.set(0)
        self.windower.tracker.clear()

    async def handle(self, message: Msg) -> None:
        if message.metadata.num_delivered > 1:
            # a holder before this one may have stored it and more: take the stream's word
            self.windower.tracker.clear()
        poll = mqtt_poll(message.subject, message.data)
        if poll is None:
            self.rejected += 1
            self._polls.labels("refused").inc()
            if message.subject not in self._refused_subjects and len(self._refused_subjects) < 1000:
                self._refused_subjects.add(message.subject)
                log.warning(
                    "%s: not a telemetry poll with node, device, seq and ts: not stored, and"
                    " no more said of this subject (point the gateway's analysis and status"
                    " topics elsewhere)",
                    message.subject,
                )
        else:
            await self._store(poll, message.data)
        await retry(message.ack_sync, self.ingest.publish_deadline_s)

    async def _store(self, poll: MqttPoll, body: bytes) -> None:
        """Store ``poll`` under a ``fleet.store`` span, as a hub stores a frame: the
        child of the gateway's span, and the parent of what the window's worker does."""
        headers = {
            MSG_ID: mqtt_reading_id(poll.node, poll.device, poll.seq),
            HEADER_NODE: poll.node,
            HEADER_DEVICE: str(poll.seq),
        }
        parent = tracing.context_of({"traceparent": poll.traceparent}) if poll.traceparent else None
        attributes = {"mcp.node": poll.node, "mcp.device": poll.device, "mcp.seq": poll.seq}
        with tracing.tracer().start_as_current_span(
            "fleet.store", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            context = tracing.inject({})
            headers.update(context)
            _, placement = await self.windower.store(
                poll.node, poll.device, poll.ts, body, headers, context
            )
            if placement.closes is not None:
                span.set_attribute("fleet.window_closed", placement.closes.index)
