"""The hub's analysis, wired: relayed polls into the pipeline, findings out through the
one MQTT publisher (the gateway's MQTT sink: TLS, flow control, PUBACK reason codes).

``hub_analysis(ollama_url, mqtt_url)`` is what ``mcptool hub --ollama/--mqtt`` runs;
each finding goes to ``analysis_topic`` of an ``[mqtt]`` table (``MqttConfig``, by
default ``mcptool/{node}/{device}/analysis``) with the node it came from.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from mcptool.analysis.config import AnalysisConfig
from mcptool.analysis.hub import HubAnalysis
from mcptool.analysis.model import AnalysisModel
from mcptool.analysis.pipeline import Sink
from mcptool.errors import McptoolError, UsageError
from mcptool.gateway.sinks.forwarder import SinkError
from mcptool.gateway.sinks.mqtt import MqttTransport
from mcptool.gateway.sinks.settings import MqttConfig
from mcptool.gateway.spool import Kind

__all__ = ["MqttFindings", "SinkUnavailable", "hub_analysis", "mqtt_settings"]


class SinkUnavailable(McptoolError):
    """The broker cannot take the record now (the pipeline keeps it and tries again)."""


def mqtt_settings(url: str, *, client_id: str = "") -> MqttConfig:
    """``mqtt://[user:password@]host[:port]`` (``mqtts://`` for TLS) as MQTT settings; the
    client id is left to the broker unless given."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts", "tcp"):
        raise UsageError(f"--mqtt {url}: use mqtt://host:port (or mqtts:// for TLS)")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise UsageError(f"--mqtt {url}: the port is not a number from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"--mqtt {url}: the port is not a number from 1 to 65535")
    return MqttConfig(
        host=parts.hostname or "127.0.0.1",
        port=port,
        username=parts.username,
        password=parts.password,
        tls=parts.scheme == "mqtts",
        client_id=client_id,
    )


class MqttFindings:
    """A pipeline sink: ``await sink(record)`` publishes an analysis record (kind finding)
    through ``MqttTransport`` and returns once the broker acknowledged it. The connection
    is opened on first use and again after a failure."""

    def __init__(self, settings: MqttConfig, node: str = "hub") -> None:
        self.mqtt = MqttTransport(settings, node)
        self.node = node
        self.where = f"MQTT broker {settings.host}:{settings.port}"

    async def __call__(self, record: dict[str, Any]) -> None:
        node = str(record.get("node") or self.node)
        device = str(record.get("device", "gateway"))
        topic = self.mqtt.topic(device, Kind.FINDING, node=node)
        message = {"kind": Kind.FINDING.value, **record}
        payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str)
        try:
            if not self.mqtt.connected:
                await self.mqtt.connect()
            await self.mqtt.publish(topic, payload.encode())
        except (SinkError, OSError) as exc:
            await self.mqtt.close()
            raise SinkUnavailable(f"{self.where}: {exc}") from exc

    async def aclose(self) -> None:
        await self.mqtt.close()


def hub_analysis(
    ollama_url: str | None,
    mqtt_url: str | None,
    *,
    model: str = "llama3.2",
    config: AnalysisConfig | None = None,
    sinks: Iterable[Sink] = (),
) -> HubAnalysis:
    """The hub's analysis from its command-line options (either URL may be None)."""
    config = dataclasses.replace(config or AnalysisConfig(), model=model)
    every: list[Sink] = list(sinks)
    closers: list[Any] = []
    if mqtt_url:
        mqtt = MqttFindings(mqtt_settings(mqtt_url))
        every.append(mqtt)
        closers.append(mqtt)
    llm: AnalysisModel | None = None
    if ollama_url:
        from mcptool.analysis.ollama_model import OllamaModel

        llm = OllamaModel.connect(ollama_url, config)
        closers.append(llm)
    return HubAnalysis(config, model=llm, sinks=every, closers=closers)
