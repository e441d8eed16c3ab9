"""The edge gateway: poll Modbus devices, spool every reading, forward to MQTT, the MCP
hub and JSON Lines, losing nothing (see docs/GATEWAY.md)."""

from mcptool.gateway.config import (
    ConfigError,
    GatewayConfig,
    Problem,
    load_config,
    parse_config,
)
from mcptool.gateway.current import CurrentValue, CurrentValues
from mcptool.gateway.encoding import PollEncoder
from mcptool.gateway.example_configs import example_config, example_names
from mcptool.gateway.gateway import Gateway
from mcptool.gateway.sinks.forwarder import Forwarder, SinkError, SinkState, Transport
from mcptool.gateway.sinks.registry import SINKS, SinkContext, SinkRegistry, SinkType
from mcptool.gateway.spool import Dropped, Kind, Record, Spool, SpoolError
from mcptool.gateway.status import StatusPublisher

__all__ = [
    "SINKS",
    "ConfigError",
    "CurrentValue",
    "CurrentValues",
    "Dropped",
    "Forwarder",
    "Gateway",
    "GatewayConfig",
    "Kind",
    "PollEncoder",
    "Problem",
    "Record",
    "SinkContext",
    "SinkError",
    "SinkRegistry",
    "SinkState",
    "SinkType",
    "Spool",
    "SpoolError",
    "StatusPublisher",
    "Transport",
    "example_config",
    "example_names",
    "load_config",
    "parse_config",
]
