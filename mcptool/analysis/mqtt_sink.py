"""Publish analysis records to an MQTT broker (for the hub, which has no gateway spool).

One aiomqtt connection, opened on first use and again after a failure. Each record goes
to ``topic`` (default ``mcptool/{node}/{device}/analysis``) at QoS 1, and ``__call__``
returns only after the broker's PUBACK; a failure raises ``SinkUnavailable``, so the
pipeline keeps a model finding in its backlog and tries again.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import urlsplit

import aiomqtt

from mcptool.errors import McptoolError, UsageError

__all__ = ["MqttSink", "SinkUnavailable", "parse_mqtt_url"]


class SinkUnavailable(McptoolError):
    """The broker cannot take the record now."""


def parse_mqtt_url(url: str) -> tuple[str, int, str | None, str | None]:
    """``mqtt://[user:password@]host[:port]`` to (host, port, user, password)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp"):
        raise UsageError(f"--mqtt {url}: use mqtt://host:port")
    try:
        port = parts.port or 1883
    except ValueError:
        raise UsageError(f"--mqtt {url}: the port is not a number from 0 to 65535") from None
    return parts.hostname or "127.0.0.1", port, parts.username, parts.password


class MqttSink:
    """``await sink(record)`` publishes the record as JSON and waits for the PUBACK."""

    def __init__(
        self,
        url: str,
        *,
        topic: str = "mcptool/{node}/{device}/analysis",
        node: str = "hub",
        client_id: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.host, self.port, self.username, self.password = parse_mqtt_url(url)
        self.topic = topic
        self.node = node
        self.client_id = client_id
        self.timeout = timeout
        self._client: aiomqtt.Client | None = None

    async def _connected(self) -> aiomqtt.Client:
        if self._client is None:
            client = aiomqtt.Client(
                self.host,
                self.port,
                username=self.username,
                password=self.password,
                identifier=self.client_id,
                timeout=self.timeout,
            )
            await client.__aenter__()
            self._client = client
        return self._client

    async def __call__(self, record: dict[str, Any]) -> None:
        node = str(record.get("node") or self.node)
        topic = self.topic.format(node=node, device=record.get("device", "gateway"))
        payload = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)
        try:
            client = await self._connected()
            await client.publish(topic, payload, qos=1, timeout=self.timeout)
        except (aiomqtt.MqttError, OSError) as exc:
            await self.aclose()
            raise SinkUnavailable(f"MQTT broker {self.host}:{self.port}: {exc}") from exc

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError):  # already gone
                await client.__aexit__(None, None, None)
