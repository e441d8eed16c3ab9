"""MQTT destination through aiomqtt: QoS 1 publishes acknowledged by the broker's PUBACK.

The one MQTT publisher: telemetry and findings, of the gateway and of the hub, go out
through it. One message per spool record (one poll of one device, or one finding), on the
topic of the record's kind: telemetry on ``topic`` (``mcptool/{node}/{device}/telemetry``
by default), findings on ``analysis_topic`` (``mcptool/{node}/{device}/analysis``),
statuses on ``status_topic``. A record counts as delivered only when every message of it
was acknowledged (the PUBACK, with a success reason code); with QoS 0 it means the bytes
were handed to the socket (no guarantee: the docs say so). ``publish`` sends one message
that is not a spool record (the hub's findings) the same way, flow control included.

Retained statuses and the will are not this sink's business: ``mcptool.gateway.status``
owns them and uses this connection (``will``, ``on_connected``, ``publish_retained``).

A message the broker will not take must neither wedge the sink (resent forever, holding
up everything behind it) nor vanish. So (docs/GATEWAY.md, "Drops: never silent"):

- MQTT 5 by default: the broker announces its maximum packet size (and how many
  messages it takes in flight) and answers each PUBACK with a reason code.
- A poll over the size limit (the broker's, ``max_packet_size``, or one learned below)
  is sent as several messages with fewer readings (``split``); a reading alone over it,
  or a record that is not a poll, is not sent: a drop of kind ``over_max_packet``.
- A refusing PUBACK either drops that message (kind ``refused``: the broker said it will
  not take *this* message, resending cannot help) or fails the connection so that it is
  sent again after a reconnect (quota exceeded, packet identifier in use: the broker's
  state, not the message). "Packet too large" teaches the sink a size limit instead.
- Last line of defence: a broker that closes the connection right after the same
  message, ``STRIKES`` times in a row (after the first time that message is sent alone,
  so that the evidence is about it), teaches the sink that messages of that size are
  too big (kind ``disconnects``). Mosquitto 2.0.11 does that with ``message_size_limit``
  over MQTT 5 (a "protocol error"), and resets MQTT 3.1.1 clients over
  ``max_packet_size``.
- Unless the size cannot explain it: the broker hung up ``STRIKES`` times in a row right
  after a message on the same topic (telemetry or a retained status) no bigger than one
  it acknowledged, with no message on that topic acknowledged in between. Then the topic
  is what it will not take (NATS closes the connection on a topic holding '.' or ' '):
  nothing is sent on it any more and its records are drops of kind ``topic_hangups``.

Every drop is handed, as a ``Dropped`` with ``where="mqtt"``, to ``on_drop`` (the spool's
``report_drop`` in the gateway), the path every drop takes to the logs, ``/metrics`` and
the published status. One loss stays invisible: an MQTT 3.1.1 client gets a PUBACK for a
message that Mosquitto's ``message_size_limit`` then discards; ``max_packet_size`` in the
config is the remedy there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from mcptool.gateway.sinks.forwarder import SinkError
from mcptool.gateway.sinks.settings import MqttConfig
from mcptool.gateway.sinks.split import Piece, Unsplittable, split
from mcptool.gateway.spool import Dropped, Kind, Record

__all__ = [
    "DISCONNECTS",
    "OVER_MAX_PACKET",
    "REFUSED",
    "STRIKES",
    "TOPIC_HANGUPS",
    "MqttTransport",
]

log = logging.getLogger(__name__)

# the kinds of MQTT drops (``Dropped.kind``, the ``reason`` label on /metrics)
OVER_MAX_PACKET = "over_max_packet"
REFUSED = "refused"
DISCONNECTS = "disconnects"
TOPIC_HANGUPS = "topic_hangups"

# lost connections in a row right after the same message before its size counts as too
# big: one could be chance (a broker restart), three with it alone in flight are not
STRIKES = 3

# PUBACK reason codes (MQTT 5, 3.4.2.1) about the broker's state rather than the
# message: the message is sent again after a reconnect. Every other failure code
# (unspecified 0x80, implementation specific 0x83, not authorized 0x87, topic name
# invalid 0x90, payload format invalid 0x99) refuses this message for good: a drop.
_RETRY = {0x91, 0x97}  # packet identifier in use, quota exceeded
_PACKET_TOO_LARGE = 0x95

# a PUBLISH packet around its topic and payload: fixed header (1), remaining length
# (up to 4), topic length (2), packet identifier (2), MQTT 5 property length (1)
_PUBLISH_OVERHEAD = 10


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when its TLS handshake fails: paho 2.2 drops the socket without
    closing it then (an untrusted broker certificate leaked a descriptor per retry)."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # not a failure: a non-blocking handshake goes on later
        except BaseException:
            self.close()
            raise


@dataclass(frozen=True, slots=True, order=True)
class _InFlight:
    """A message published on this connection and not acknowledged yet, in send order."""

    record_id: int  # -1: not a spool record (a retained status, a hub's finding)
    order: int
    size: int
    topic: str


@dataclass(frozen=True, slots=True)
class _Limit:
    """The payload bytes a message may have, where that limit comes from (``kind`` of the
    drops it causes) and how to say so."""

    payload: int
    kind: str
    what: str


@dataclass(slots=True)
class _Ahead:
    """The records delivered before the suspect on a connection, while they are sent."""

    sending: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    async def done(self) -> None:
        if self.sending:
            await self.idle.wait()


class MqttTransport:
    """``Transport`` for the forwarder, and ``publish`` for messages outside the spool."""

    def __init__(
        self,
        config: MqttConfig,
        node: str,
        *,
        base_dir: Path = Path(),
        on_drop: Callable[[Dropped], None] | None = None,
    ) -> None:
        self.name = "mqtt"
        self.hint = (
            f"is a broker running at {config.host}:{config.port}? check [mqtt] host, port,"
            " credentials and TLS settings"
        )
        self.config = config
        self.node = node
        self.base_dir = base_dir
        self.on_drop = on_drop
        # the last will (topic, payload) to leave with the broker at each connect, and
        # what to do once connected: set by whoever owns the statuses
        self.will: Callable[[], tuple[str, bytes]] | None = None
        self.on_connected: list[Callable[[], Awaitable[None]]] = []
        self.dropped: dict[str, int] = {}  # readings per device never sent (or refused)
        self.broker_max_packet: int | None = None  # announced in the last CONNACK (MQTT 5)
        self._client: aiomqtt.Client | None = None
        self._templates = {
            Kind.TELEMETRY: config.topic,
            Kind.FINDING: config.analysis_topic,
            Kind.STATUS: config.status_topic,
        }
        self._topics: dict[tuple[str, Kind], str] = {}
        # PUBACKs awaited and what they are for, by packet identifier (this connection)
        self._acks: dict[int, asyncio.Future[ReasonCode]] = {}
        self._in_flight: dict[int, _InFlight] = {}
        self._order = 0
        self._lost = False  # this connection failed (not closed by us)
        # the record sent when the connection was lost, alone on the next connections
        # until it is through; the others wait for ``_released``
        self._suspect: int | None = None
        self._suspect_topic = ""
        self._strikes = 0
        self._released: asyncio.Event | None = None
        self._ahead: _Ahead | None = None  # while the suspect lets its batch go first
        self._learned: _Limit | None = None  # from refusals and lost connections
        self._learned_on = ""  # the topic of the message that taught it
        # the biggest message acknowledged so far: a hangup after a smaller one is not
        # about size
        self._acked_max = 0
        # hangups in a row right after a message on one topic, and the topics given up
        self._hangup_topic = ""
        self._hangups = 0
        self._dead_topics: dict[str, str] = {}  # topic -> why, for the drops
        self._gone = asyncio.Event()  # this connection ended (retained publishes stop)
        # messages refused (and reported) already, by (record id, first seq): Mosquitto
        # 2.0.11 with max_queued_messages 0 closes the connection right after a refusing
        # PUBACK, before the forwarder takes note, so the record comes again
        self._refused: dict[tuple[int, int], None] = {}
        self._refusal = False  # one on this connection: the broker said why it closed
        # QoS 1 messages in flight: the window, or fewer if the broker says so (paho
        # cannot change its own limit once connected)
        self._room = asyncio.Semaphore(config.window)

    def topic(self, device: str, kind: Kind = Kind.TELEMETRY, node: str | None = None) -> str:
        """The topic of ``device``'s records of ``kind`` (of this node, or of ``node``)."""
        if node is not None:
            return self._templates[kind].format(node=node, device=device)
        topic = self._topics.get((device, kind))
        if topic is None:
            topic = self._templates[kind].format(node=self.node, device=device)
            self._topics[device, kind] = topic
        return topic

    @property
    def connected(self) -> bool:
        return self._client is not None

    def _tls(self) -> ssl.SSLContext | None:
        config = self.config
        if not config.tls:
            return None
        try:
            context = ssl.create_default_context(
                cafile=str(self.base_dir / config.ca_file) if config.ca_file else None
            )
            if config.cert_file:
                context.load_cert_chain(
                    self.base_dir / config.cert_file,
                    self.base_dir / config.key_file if config.key_file else None,
                )
        except (OSError, ssl.SSLError) as exc:
            raise SinkError(f"mqtt TLS files: {exc}") from None
        if config.tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.sslsocket_class = _ClosingSSLSocket
        return context

    async def connect(self) -> None:
        config = self.config
        session: dict[str, Any] = (
            {"protocol": aiomqtt.ProtocolVersion.V5, "clean_start": True}
            if config.protocol == "5"
            else {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": True}
        )
        client = aiomqtt.Client(
            config.host,
            config.port,
            username=config.username,
            password=config.password,
            identifier=config.client_id.format(node=self.node),
            keepalive=config.keepalive,
            will=aiomqtt.Will(*self.will(), qos=1, retain=True) if self.will else None,
            tls_context=self._tls(),
            max_inflight_messages=config.window,
            timeout=config.publish_timeout,
            **session,
        )
        # many publishes in flight is the point of the window, not a leak to warn about
        client.pending_calls_threshold = config.window + 50
        self._listen(client)
        self.broker_max_packet = None
        self._lost = self._refusal = False
        self._released = None
        self._ahead = None
        self._room = asyncio.Semaphore(config.window)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise SinkError(f"mqtt {config.host}:{config.port}: {exc}") from None
        self._client = client
        for connected in self.on_connected:
            await connected()

    def _listen(self, client: aiomqtt.Client) -> None:
        """Keep what aiomqtt 2.5 drops: the CONNACK's properties and each PUBACK's reason
        code. Its paho client's callbacks are wrapped (paho's callback API version 2 is
        public; ``_client``, the paho client, is the one aiomqtt internal relied on), and
        telemetry is published on that client directly so that the packet identifier,
        hence the reason code, of each message is known."""
        inner = client._client
        aiomqtt_connect, aiomqtt_publish = inner.on_connect, inner.on_publish
        aiomqtt_disconnect = inner.on_disconnect
        gone = self._gone = asyncio.Event()

        def on_connect(*args: Any) -> None:
            properties = args[4] if len(args) > 4 else None
            self.broker_max_packet = getattr(properties, "MaximumPacketSize", None)
            receive = getattr(properties, "ReceiveMaximum", None)
            if receive:  # more in flight than the broker takes is a protocol error
                self._room = asyncio.Semaphore(min(self.config.window, receive))
            aiomqtt_connect(*args)

        def on_publish(
            paho_client: paho.Client, userdata: Any, mid: int, code: ReasonCode, props: Any
        ) -> None:
            sent = self._in_flight.pop(mid, None)
            if sent is not None and not code.is_failure:
                self._acked_max = max(self._acked_max, sent.size)
                if sent.topic == self._hangup_topic:
                    self._hangup_topic, self._hangups = "", 0
            self._refusal = self._refusal or code.is_failure
            ack = self._acks.pop(mid, None)
            if ack is not None and not ack.done():
                ack.set_result(code)
            aiomqtt_publish(paho_client, userdata, mid, code, props)

        def on_disconnect(*args: Any) -> None:
            gone.set()
            aiomqtt_disconnect(*args)

        inner.on_connect = on_connect
        inner.on_publish = on_publish
        inner.on_disconnect = on_disconnect

    async def send(self, record: Record) -> None:
        if self._client is None:
            raise SinkError("mqtt: not connected")
        suspect = self._suspect
        if suspect is not None and record.id >= suspect:
            # sends start in record order: the suspect's comes first on a connection
            if record.id == suspect:
                await self._send_suspect(record)
                return
            if self._released is None:  # the suspect went before (acknowledged, dropped)
                self._suspect, self._strikes = None, 0
            elif self._ahead is not None and self.topic(record.device, record.kind) != (
                self._suspect_topic
            ):
                await self._deliver_ahead(record, self._ahead)
                return
            else:
                await self._released.wait()
        await self._deliver(record)

    async def _send_suspect(self, record: Record) -> None:
        """The suspect goes alone, after the records on other topics sent with it: they are
        delivered first, so that the messages the broker took say whether the suspect's
        size can be the cause (``_hung_up_on``) and a topic it hangs up on holds up only
        itself."""
        released = self._released = asyncio.Event()
        ahead = self._ahead = _Ahead()
        # the records fetched with it start their sends now (the forwarder creates their
        # tasks with this one's); any later ones wait for ``released``
        await asyncio.sleep(0)
        self._ahead = None
        await ahead.done()
        await self._deliver(record, alone=True)
        self._suspect, self._strikes = None, 0
        released.set()

    async def _deliver_ahead(self, record: Record, ahead: _Ahead) -> None:
        ahead.sending += 1
        try:
            await self._deliver(record)
        finally:
            ahead.sending -= 1
            if not ahead.sending:
                ahead.idle.set()

    async def _deliver(self, record: Record, *, alone: bool = False) -> None:
        """Publish ``record`` as messages that fit; return once each is acknowledged or
        reported as a drop."""
        topic = self.topic(record.device, record.kind)
        dead = self._dead_topics.get(topic)
        if dead is not None:
            self._drop(record.stream, record.seq_first, record.seq_last, dead, TOPIC_HANGUPS)
            return
        while True:
            limit = self._limit(topic)
            try:
                parts = split(record, limit.payload)
            except Unsplittable as exc:
                why = f"a record of {exc.size} bytes does not fit {limit.what} and {exc.why}"
                self._drop(record.stream, record.seq_first, record.seq_last, why, limit.kind)
                return
            pieces = [p for p in parts.pieces if (record.id, p.seq_first) not in self._refused]
            codes = await self._publish_all(topic, pieces, record.id, alone)
            refused = [(p, c) for p, c in zip(pieces, codes, strict=True) if c.is_failure]
            too_large = [p for p, c in refused if c.value == _PACKET_TOO_LARGE]
            if too_large:
                # cut again under the smallest refused size; the parts acknowledged go
                # again too (resends, which the sequence numbers identify)
                size = min(len(p.body) for p in too_large)
                self._learn(size - 1, REFUSED, f"it refused a message of {size} bytes", topic)
                continue
            for _, code in refused:
                if code.value in _RETRY:
                    raise SinkError(f"mqtt: the broker refused a message for now: {_name(code)}")
            for piece, code in refused:
                why = f"the broker refused the message: {_name(code)}"
                self._drop(record.stream, piece.seq_first, piece.seq_last, why, REFUSED)
                self._refused[record.id, piece.seq_first] = None
            while len(self._refused) > 4 * self.config.window:  # older ones are not resent
                del self._refused[next(iter(self._refused))]
            # reported once the rest is acknowledged: a resend after a lost connection
            # would otherwise count them again
            for first, last, size in parts.oversized:
                why = f"a reading of {size} bytes does not fit {limit.what}"
                self._drop(record.stream, first, last, why, limit.kind)
            return

    async def _publish_all(
        self, topic: str, pieces: Sequence[Piece], record_id: int, alone: bool
    ) -> list[ReasonCode]:
        if alone or len(pieces) == 1:  # one at a time: a lost connection names the piece
            return [await self._publish(topic, p.body, record_id) for p in pieces]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._publish(topic, p.body, record_id)) for p in pieces]
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return [task.result() for task in tasks]

    async def _publish(self, topic: str, body: bytes, record_id: int) -> ReasonCode:
        """Publish one message; its PUBACK's reason code (success at once for QoS 0)."""
        if self.config.qos == 0:
            self._publish_now(topic, body)
            return ReasonCode(paho.PacketTypes.PUBACK)
        async with self._room:
            return await self._publish_acked(topic, body, record_id)

    def _publish_now(
        self, topic: str, body: bytes, qos: int | None = None, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        client = self._client
        if client is None:
            raise SinkError("mqtt: not connected")
        info = client._client.publish(
            topic, body, self.config.qos if qos is None else qos, retain=retain
        )
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self._lost = True
            raise SinkError(f"mqtt publish: {paho.error_string(info.rc)}")
        return info

    async def _publish_acked(self, topic: str, body: bytes, record_id: int) -> ReasonCode:
        info = self._publish_now(topic, body)
        ack: asyncio.Future[ReasonCode] = asyncio.get_running_loop().create_future()
        self._acks[info.mid] = ack
        self._in_flight[info.mid] = _InFlight(record_id, self._order, len(body), topic)
        self._order += 1
        try:
            async with asyncio.timeout(self.config.publish_timeout):
                return await ack
        except TimeoutError:
            self._lost = True
            raise SinkError(
                f"mqtt publish: no PUBACK within {self.config.publish_timeout:g} s"
            ) from None
        finally:
            self._acks.pop(info.mid, None)

    def _limit(self, topic: str) -> _Limit:
        """The tightest of the configured, announced and learned limits, in payload bytes."""
        overhead = len(topic.encode()) + _PUBLISH_OVERHEAD
        limits = [_Limit(sys.maxsize, OVER_MAX_PACKET, "")]
        if self.config.max_packet_size:
            size = self.config.max_packet_size
            what = f"max_packet_size ({size} bytes with topic and headers)"
            limits.append(_Limit(size - overhead, OVER_MAX_PACKET, what))
        if self.broker_max_packet:
            size = self.broker_max_packet
            what = f"the broker's maximum packet size ({size} bytes with topic and headers)"
            limits.append(_Limit(size - overhead, OVER_MAX_PACKET, what))
        if self._learned is not None:
            limits.append(self._learned)
        return min(limits, key=lambda limit: limit.payload)

    def _learn(self, payload: int, kind: str, evidence: str, topic: str) -> None:
        if self._learned is None or payload < self._learned.payload:
            what = f"what the broker takes ({evidence})"
            self._learned, self._learned_on = _Limit(payload, kind, what), topic
            log.warning("mqtt: %s: messages are now cut to at most %d bytes", evidence, payload)

    def _strike(self) -> None:
        """The connection was lost: the oldest message not acknowledged is the suspect,
        unless the broker refused one just before (it said why)."""
        if not self._in_flight or self._refusal:
            return
        if self._hung_up_on(min(self._in_flight.values(), key=lambda sent: sent.order)):
            return
        culprit = min(self._in_flight.values())
        if culprit.record_id < 0:
            return  # not a record: nothing to cut
        if culprit.record_id != self._suspect:
            self._suspect, self._strikes = culprit.record_id, 0
            self._suspect_topic = culprit.topic
        self._strikes += 1
        if self._strikes >= STRIKES:
            evidence = (
                f"it closed the connection {STRIKES} times in a row"
                f" right after a message of {culprit.size} bytes"
            )
            self._learn(culprit.size - 1, DISCONNECTS, evidence, culprit.topic)
            self._strikes = 0  # its record is cut smaller now: new messages, new evidence

    def _hung_up_on(self, culprit: _InFlight) -> bool:
        """Count a hangup against ``culprit``'s topic; True once the topic is given up: the
        broker hung up right after a message on it ``STRIKES`` times in a row, each no
        bigger than a message it acknowledged (so not the size rule's case)."""
        if culprit.size > self._acked_max or culprit.topic != self._hangup_topic:
            self._hangup_topic, self._hangups = culprit.topic, 0
        if culprit.size > self._acked_max:
            return False  # too big, perhaps: the size rule's evidence
        self._hangups += 1
        if self._hangups < STRIKES:
            return False
        topic = culprit.topic
        self._hangup_topic, self._hangups = "", 0
        self._dead_topics[topic] = (
            f"the broker closes the connection on topic {topic!r} ({STRIKES} times in a row"
            f" right after a message of {culprit.size} bytes on it, a size it takes; NATS"
            " does so on '.' or ' ' in a topic)"
        )
        # a limit learned from the same hangups was a misreading of them
        forgotten = self._learned_on == topic
        if forgotten:
            self._learned, self._learned_on = None, ""
        log.warning(
            "mqtt: the broker closed the connection %d times in a row right after a message"
            " on topic %r of %d bytes, a size it takes: nothing more is sent on that topic"
            " and its readings are reported as dropped%s; NATS's MQTT listener does so on a"
            " topic with '.' or ' ' (from a device or node name): rename the device or node,"
            " or send over the link ([uplink] to mcptool hub --nats)",
            STRIKES,
            topic,
            culprit.size,
            " (the size limit learned from it is forgotten)" if forgotten else "",
        )
        if culprit.record_id == self._suspect:
            self._suspect, self._strikes = None, 0
        return True

    def _drop(self, device: str, first: int, last: int, why: str, kind: str) -> None:
        dropped = Dropped(device, first, last, f"mqtt: {why}", "mqtt", kind)
        self.dropped[device] = self.dropped.get(device, 0) + dropped.count
        if self.on_drop is not None:
            self.on_drop(dropped)
        else:
            log.warning("%s", dropped)

    async def watch(self) -> None:
        client = self._client
        if client is None:
            raise SinkError("mqtt: not connected")
        try:
            async for _ in client.messages:  # ends with MqttError when the connection drops
                pass
        except aiomqtt.MqttError as exc:
            self._lost = True
            raise SinkError(f"mqtt connection lost: {exc}") from None

    async def close(self) -> None:
        client, self._client = self._client, None
        if self._lost:
            self._strike()
        self._lost = False
        self._in_flight.clear()
        for ack in self._acks.values():
            ack.cancel()
        self._acks.clear()
        if self._released is not None:
            self._released.set()  # nobody waits on a closed connection
            self._released = None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish one message outside the spool (the hub's findings) and return once the
        broker acknowledged it; ``SinkError`` if it did not (the caller keeps it)."""
        if self._client is None:
            raise SinkError("mqtt: not connected")
        code = await self._publish(topic, payload, -1)
        if code.is_failure:
            raise SinkError(f"mqtt: the broker refused the message: {_name(code)}")

    async def publish_retained(self, topic: str, payload: bytes) -> None:
        """Publish a retained message (QoS 1) if connected; a failure is not raised: their
        owner publishes statuses again after each reconnect."""
        if self._client is None or topic in self._dead_topics:
            return
        gone = self._gone
        async with self._room:
            try:
                info = self._publish_now(topic, payload, qos=1, retain=True)
            except SinkError:
                return
            # tracked like telemetry, so that a broker hanging up on it is noticed
            ack: asyncio.Future[ReasonCode] = asyncio.get_running_loop().create_future()
            self._acks[info.mid] = ack
            self._in_flight[info.mid] = _InFlight(-1, self._order, len(payload), topic)
            self._order += 1
            ended = asyncio.ensure_future(gone.wait())
            try:
                await asyncio.wait(
                    {ack, ended},
                    timeout=self.config.publish_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                ended.cancel()
                self._acks.pop(info.mid, None)
            if not ack.done() and gone.is_set():
                self._lost = True  # the broker hung up: ``close`` counts it


def _name(code: ReasonCode) -> str:
    return f"{code} (0x{code.value:02x})"
