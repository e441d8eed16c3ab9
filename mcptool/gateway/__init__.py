"""The edge gateway: poll Modbus devices, spool every reading, forward to MQTT, the MCP
hub and JSON Lines, losing nothing (see docs/GATEWAY.md)."""

from mcptool.gateway.config import (
    ConfigError,
    GatewayConfig,
    Problem,
    load_config,
    parse_config,
)
from mcptool.gateway.encoding import PollEncoder
from mcptool.gateway.example_configs import example_config, example_names
from mcptool.gateway.pipeline import Gateway
from mcptool.gateway.sinks.forwarder import Forwarder, SinkError, SinkState, Transport
from mcptool.gateway.spool import Dropped, Record, Spool, SpoolError

__all__ = [
    "ConfigError",
    "Dropped",
    "Forwarder",
    "Gateway",
    "GatewayConfig",
    "PollEncoder",
    "Problem",
    "Record",
    "SinkError",
    "SinkState",
    "Spool",
    "SpoolError",
    "Transport",
    "example_config",
    "example_names",
    "load_config",
    "parse_config",
]
