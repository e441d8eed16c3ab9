"""Retained statuses on MQTT: each device's, the gateway's, its will, and the last word.

The telemetry sink carries records; the statuses are another job with other rules: the
latest of each is retained by the broker, sent again after every reconnect, and the
gateway's own status doubles as its will (retained ``offline``, which the broker
publishes when the connection dies without a goodbye). ``StatusPublisher`` owns them and
borrows the MQTT sink's connection (one client id, one connection to the broker).

At a clean stop, ``say_offline`` publishes ``offline`` for every device and the gateway,
acknowledged, before the connection closes: subscribers read the same as after a crash,
without waiting for the broker to notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["StatusChannel", "StatusPublisher"]


class StatusChannel(Protocol):
    """What statuses need from a connection (``MqttTransport`` is one)."""

    will: Callable[[], tuple[str, bytes]] | None
    on_connected: list[Callable[[], Awaitable[None]]]

    @property
    def connected(self) -> bool: ...

    async def publish_retained(self, topic: str, payload: bytes) -> None: ...


class StatusPublisher:
    """The gateway's and its devices' retained statuses, on ``channel``.

    ``status_topic`` has ``{node}`` and ``{device}``, ``gateway_topic`` ``{node}``;
    ``summary`` gives what the gateway's ``online`` status says besides that.
    """

    def __init__(
        self,
        channel: StatusChannel,
        node: str,
        *,
        status_topic: str,
        gateway_topic: str,
        summary: Callable[[], dict[str, object]] | None = None,
    ) -> None:
        self.channel = channel
        self.node = node
        self.status_topic = status_topic
        self.gateway_topic = gateway_topic.format(node=node)
        self.summary = summary or (lambda: {})
        self._statuses: dict[str, bytes] = {}  # topic -> retained payload, latest
        self._tasks: set[asyncio.Future[None]] = set()
        channel.will = lambda: (self.gateway_topic, self._gateway(online=False))
        channel.on_connected.append(self._connected)

    def _gateway(self, *, online: bool) -> bytes:
        status = {"status": "online" if online else "offline", "ts": round(time.time(), 3)}
        if online:
            status.update(self.summary())
        return _dump(status)

    async def _connected(self) -> None:
        """A new connection: the gateway is online, and every status is said again."""
        await self.channel.publish_retained(self.gateway_topic, self._gateway(online=True))
        for topic, payload in list(self._statuses.items()):
            await self.channel.publish_retained(topic, payload)

    def device(self, device: str, status: dict[str, object]) -> None:
        """``device``'s status changed: retained now if connected, and after reconnects."""
        topic = self.status_topic.format(node=self.node, device=device)
        self._statuses[topic] = payload = _dump(status)
        self._publish(topic, payload)

    def gateway_changed(self) -> None:
        """The gateway's summary changed (drops, spool health)."""
        self._publish(self.gateway_topic, self._gateway(online=True))

    def _publish(self, topic: str, payload: bytes) -> None:
        if self.channel.connected:
            task = asyncio.ensure_future(self.channel.publish_retained(topic, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def say_offline(
        self, devices: dict[str, dict[str, object]], timeout: float = 2.0
    ) -> bool:
        """Graceful end: publish each device's last status and the gateway's ``offline``
        (retained, acknowledged) while still connected, as the will would after a crash.
        Call it before the connection is closed. False if there was no connection or the
        broker did not acknowledge in time."""
        if not self.channel.connected:
            return False
        for device, status in devices.items():
            topic = self.status_topic.format(node=self.node, device=device)
            self._statuses[topic] = _dump(status)
        try:
            async with asyncio.timeout(timeout):
                for topic, payload in list(self._statuses.items()):
                    await self.channel.publish_retained(topic, payload)
                await self.channel.publish_retained(self.gateway_topic, self._gateway(online=False))
        except TimeoutError:
            return False
        return self.channel.connected

    async def drain(self) -> None:
        """Wait for the status publishes under way."""
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    async def close(self) -> None:
        """Cancel the status publishes still under way."""
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _dump(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
