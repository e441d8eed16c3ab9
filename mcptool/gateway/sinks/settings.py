"""The settings of the gateway's built-in sinks: the ``[mqtt]``, ``[uplink]`` and
``[jsonl]`` tables. Each sink is declared, with its settings, in ``registry``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from mcptool.gateway.fields import Port, Seconds, SettingsModel

__all__ = ["JsonlConfig", "MqttConfig", "UplinkConfig"]


def _protocol(value: object) -> object:
    """``protocol = 5`` (a TOML integer) means ``"5"``."""
    return "5" if value == 5 and not isinstance(value, bool) else value


class MqttConfig(SettingsModel):
    host: str = "127.0.0.1"
    port: Port = 1883
    client_id: str = "mcptool-{node}"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    qos: Literal[0, 1] = 1
    topic: str = "mcptool/{node}/{device}/telemetry"
    # records of kind finding (the analysis of {device})
    analysis_topic: str = "mcptool/{node}/{device}/analysis"
    status_topic: str = "mcptool/{node}/{device}/status"
    gateway_topic: str = "mcptool/{node}/status"
    keepalive: int = Field(default=30, ge=5, le=3600)
    window: int = Field(default=200, ge=1, le=10000)
    publish_timeout: Seconds = 10.0
    # MQTT 5 lets the broker announce its maximum packet size and refuse a message with a
    # reason; "3.1.1" is for brokers that speak nothing newer (docs/GATEWAY.md)
    protocol: Annotated[Literal["5", "3.1.1"], BeforeValidator(_protocol)] = "5"
    # bytes of one PUBLISH packet (topic and headers included); a poll over it is cut by
    # readings. For brokers that do not announce their limit (MQTT 3.1.1, or Mosquitto's
    # message_size_limit, which it does not announce)
    max_packet_size: int | None = Field(default=None, ge=256, le=268_435_455)

    def nats_warning(self, node: str, devices: Sequence[str]) -> str | None:
        """One line if a topic of ``node``'s ``devices`` holds '.' or ' ', which NATS's MQTT
        listener (it speaks 3.1.1 only) closes the connection on: the sink would then give
        that topic up (docs/GATEWAY.md). Not an error: other brokers take them."""
        if self.protocol != "3.1.1":
            return None
        templates = (self.topic, self.analysis_topic, self.status_topic)
        names = [
            name
            for name in ([node] if "{node}" in "".join(templates) else [])
            + (list(devices) if "{device}" in "".join(templates) else [])
            if "." in name or " " in name
        ]
        if not names:
            return None
        shown = ", ".join(f'"{name}"' for name in dict.fromkeys(names))
        return (
            f"mqtt: {shown} in MQTT topics: with '.' or ' ' NATS's MQTT listener closes the"
            " connection and the gateway drops those readings; if [mqtt] points at NATS,"
            " rename them or use [uplink] to mcptool hub --nats"
        )


def _hub_urls(value: object) -> object:
    """One hub URL, or a list of them (hubs that share a store: the uplink fails over)."""
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, list) or not urls:
        return value  # pydantic names the type that was expected
    schemes = set()
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("mcp://", "mcps://")):
            raise ValueError(f"{url!r}: give mcp://HOST:PORT or mcps://HOST:PORT")
        schemes.add(url.split("://", 1)[0])
    if len(schemes) > 1:
        raise ValueError("every hub URL needs the same scheme (all mcp:// or all mcps://)")
    return urls


class UplinkConfig(SettingsModel):
    # one hub, or several that share a store (`mcptool hub --nats`): tried in turn
    url: Annotated[list[str], BeforeValidator(_hub_urls)] = Field(
        min_length=1, description="mcp://HOST:PORT or mcps://HOST:PORT, or a list of them"
    )
    node_id: str | None = None  # default: the gateway's node
    key: str | None = Field(default=None, min_length=16)
    key_file: str | None = None
    ca_file: str | None = None
    tls_insecure: bool = False
    window: int = Field(default=64, ge=1, le=4096)
    connect_timeout: Seconds = 10.0
    # at most the hub's max_frame; the floor leaves room for the handshake and ACKs. The
    # bounds are mcptool.frame's MAX_LENGTH_DEFAULT and _LIMIT (a test checks), written
    # out because importing the frame codec would slow down `gateway check`
    max_frame: int = Field(default=16_384, ge=512, le=65_535)


class JsonlConfig(SettingsModel):
    path: str = "-"
