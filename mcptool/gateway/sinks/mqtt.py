"""MQTT destination through aiomqtt: QoS 1 publishes acknowledged by the broker's PUBACK.

One message per spool record (one poll of one device: a batch of readings), on the
topic template (``mcptool/{node}/{device}/telemetry`` by default). Analysis records (the
spool's pseudo-device ``<device>/analysis``) go on ``analysis_topic`` with ``{device}``
the device they analyse (``mcptool/{node}/{device}/analysis`` by default), not under the
telemetry topic. A record counts as
delivered only when ``publish`` returned, which with QoS 1 means the PUBACK arrived; with
QoS 0 it means the bytes were handed to the socket (no guarantee: the docs say so).

Device status and the gateway's own status are retained messages; the gateway's will
(retained ``offline``) is set on connect, so subscribers learn of a crash from the
broker. Statuses are published again after every reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt

from mcptool.gateway.config import MqttConfig
from mcptool.gateway.sinks.forwarder import SinkError
from mcptool.gateway.spool import Record

__all__ = ["MqttTransport"]

# the spool's pseudo-device of a device's analysis records (mcptool.analysis.edge, which
# builds on this package, names them so)
ANALYSIS_SUFFIX = "/analysis"


class MqttTransport:
    """``Transport`` for the forwarder; also publishes retained statuses."""

    def __init__(
        self,
        config: MqttConfig,
        node: str,
        *,
        base_dir: Path = Path(),
        gateway_status: Callable[[], dict[str, object]] | None = None,
    ) -> None:
        self.name = "mqtt"
        self.config = config
        self.node = node
        self.base_dir = base_dir
        self.gateway_status = gateway_status or (lambda: {})
        self._client: aiomqtt.Client | None = None
        self._topics: dict[str, str] = {}
        self._statuses: dict[str, bytes] = {}  # topic -> retained payload, latest
        self._status_tasks: set[asyncio.Task[None]] = set()
        self.gateway_topic = config.gateway_topic.format(node=node)

    def topic(self, device: str) -> str:
        topic = self._topics.get(device)
        if topic is None:
            template, name = self.config.topic, device
            if device.endswith(ANALYSIS_SUFFIX) and len(device) > len(ANALYSIS_SUFFIX):
                template, name = self.config.analysis_topic, device[: -len(ANALYSIS_SUFFIX)]
            topic = self._topics[device] = template.format(node=self.node, device=name)
        return topic

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
        return context

    def _status_payload(self, online: bool) -> bytes:
        status = {"status": "online" if online else "offline", "ts": round(time.time(), 3)}
        if online:
            status.update(self.gateway_status())
        return json.dumps(status, separators=(",", ":")).encode()

    async def connect(self) -> None:
        config = self.config
        client = aiomqtt.Client(
            config.host,
            config.port,
            username=config.username,
            password=config.password,
            identifier=config.client_id.format(node=self.node),
            keepalive=config.keepalive,
            will=aiomqtt.Will(self.gateway_topic, self._status_payload(False), qos=1, retain=True),
            clean_session=True,
            tls_context=self._tls(),
            max_inflight_messages=config.window,
            timeout=config.publish_timeout,
        )
        # many publishes in flight is the point of the window, not a leak to warn about
        client.pending_calls_threshold = config.window + 50
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise SinkError(f"mqtt {config.host}:{config.port}: {exc}") from None
        self._client = client
        await self._publish_retained(self.gateway_topic, self._status_payload(True))
        for topic, payload in list(self._statuses.items()):
            await self._publish_retained(topic, payload)

    async def send(self, record: Record) -> None:
        client = self._client
        if client is None:
            raise SinkError("mqtt: not connected")
        try:
            await client.publish(self.topic(record.device), record.payload, qos=self.config.qos)
        except aiomqtt.MqttError as exc:
            raise SinkError(f"mqtt publish: {exc}") from None

    async def watch(self) -> None:
        client = self._client
        if client is None:
            raise SinkError("mqtt: not connected")
        try:
            async for _ in client.messages:  # ends with MqttError when the connection drops
                pass
        except aiomqtt.MqttError as exc:
            raise SinkError(f"mqtt connection lost: {exc}") from None

    async def close(self) -> None:
        client, self._client = self._client, None
        for task in list(self._status_tasks):
            task.cancel()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def stop(self) -> None:
        """Graceful end: say offline (retained) before disconnecting, as the will would."""
        if self._client is not None:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                async with asyncio.timeout(2):
                    await self._publish_retained(self.gateway_topic, self._status_payload(False))
        await self.close()

    # -- retained statuses ---------------------------------------------------------------

    def device_status(self, device: str, status: dict[str, object]) -> None:
        topic = self.config.status_topic.format(node=self.node, device=device)
        self.retain(topic, json.dumps(status, separators=(",", ":")).encode())

    def gateway_changed(self) -> None:
        self.retain(self.gateway_topic, self._status_payload(True))

    def retain(self, topic: str, payload: bytes) -> None:
        """Publish a retained message now if connected, and again after each reconnect."""
        if topic != self.gateway_topic:
            self._statuses[topic] = payload
        if self._client is not None:
            task = asyncio.ensure_future(self._publish_retained(topic, payload))
            self._status_tasks.add(task)
            task.add_done_callback(self._status_tasks.discard)

    async def _publish_retained(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is None:
            return
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(topic, payload, qos=1, retain=True)
