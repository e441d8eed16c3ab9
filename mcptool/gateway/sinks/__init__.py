"""Destinations of the gateway: each a ``Transport`` driven by a ``Forwarder``."""

from mcptool.gateway.sinks.forwarder import Forwarder, SinkError, SinkState, Transport
from mcptool.gateway.sinks.jsonl import JsonlTransport
from mcptool.gateway.sinks.mqtt import MqttTransport

__all__ = ["Forwarder", "JsonlTransport", "MqttTransport", "SinkError", "SinkState", "Transport"]
