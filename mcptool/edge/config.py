"""The whole TOML config of an edge node: the gateway's tables and every sink's, the
analysis included. ``mcptool.gateway`` reads its own tables and those of the sinks in
the registry it is given; this layer gives it the registry with ``analysis`` in it, so
one parse reports every problem of the file at once, each with its exact path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcptool.analysis.config import AnalysisConfig
from mcptool.edge.analysis import ANALYSIS
from mcptool.gateway import config as gateway_config
from mcptool.gateway.config import GatewayConfig
from mcptool.gateway.sinks.registry import SINKS

__all__ = ["EDGE_SINKS", "analysis_config", "load_config", "parse_config"]

EDGE_SINKS = SINKS.with_sink(ANALYSIS)


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a TOML file; raises ``ConfigError`` listing every problem."""
    return gateway_config.load_config(path, sinks=EDGE_SINKS)


def parse_config(
    data: Mapping[str, Any], *, source: str = "config", base_dir: Path | None = None
) -> GatewayConfig:
    """Validate a config given as a mapping (the parsed TOML)."""
    return gateway_config.parse_config(data, source=source, base_dir=base_dir, sinks=EDGE_SINKS)


def analysis_config(config: GatewayConfig) -> AnalysisConfig | None:
    """The ``[analysis]`` settings of ``config``, if it has them."""
    settings = config.sinks.get(ANALYSIS.name)
    return settings if isinstance(settings, AnalysisConfig) else None
