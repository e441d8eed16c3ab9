"""The composition layer: one edge node's config and its wiring.

``mcptool.gateway`` (poll, spool, sinks) and ``mcptool.analysis`` (statistics, triggers,
findings) do not know each other; this package puts them together. It owns the whole
TOML config (``load_config``: the gateway's tables and every sink's, ``[analysis]``
included), declares the ``analysis`` sink (``edge.analysis``), and gives the commands
one entry point each: ``edge_gateway`` for ``gateway run`` and ``demo``,
``hub_analysis`` and ``analyze_handler`` for ``hub``. See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mcptool.analysis.config import AnalysisConfig
from mcptool.edge.analysis import ANALYSIS, analysis_sink
from mcptool.edge.config import EDGE_SINKS, analysis_config, load_config, parse_config
from mcptool.gateway import Gateway, GatewayConfig
from mcptool.gateway.sinks.forwarder import Transport

if TYPE_CHECKING:
    from mcptool.analysis.hub import HubAnalysis
    from mcptool.analysis.model import AnalysisModel
    from mcptool.analysis.pipeline import Sink
    from mcptool.link import Handler

__all__ = [
    "ANALYSIS",
    "EDGE_SINKS",
    "analysis_config",
    "analyze_handler",
    "edge_gateway",
    "hub_analysis",
    "load_config",
    "parse_config",
]


def edge_gateway(
    config: GatewayConfig,
    *,
    model: AnalysisModel | None = None,
    extra_sinks: Iterable[Sink] = (),
    transports: list[Transport] | None = None,
    drain_timeout: float = 2.0,
) -> Gateway:
    """The gateway of ``config``, its polls analysed when it has an enabled ``[analysis]``.

    ``async with edge_gateway(config) as gw:`` runs it; leaving the block stops the
    gateway, then the analysis. ``model`` replaces the Ollama at ``[analysis] ollama``
    (the caller closes it); ``extra_sinks`` get every analysis record too (a live view).
    """
    if model is not None or extra_sinks:
        sinks = config.sink_types.with_sink(analysis_sink(model=model, extra_sinks=extra_sinks))
        config = config.with_changes(sink_types=sinks)
    return Gateway(config, transports=transports, drain_timeout=drain_timeout)


def hub_analysis(
    ollama_url: str | None,
    mqtt_url: str | None,
    *,
    model: str | None = "llama3.2",
    config: AnalysisConfig | None = None,
    sinks: Iterable[Sink] = (),
) -> HubAnalysis:
    """The hub's analysis from its command-line options; see ``mcptool.edge.hub``."""
    from mcptool.edge import hub

    return hub.hub_analysis(ollama_url, mqtt_url, model=model, config=config, sinks=sinks)


def analyze_handler(analysis: HubAnalysis | None, *, timeout_s: float = 25.0) -> Handler:
    """The hub's ``analyze`` action through the model of ``analysis``; see
    ``mcptool.edge.hub``."""
    from mcptool.edge import hub

    return hub.analyze_handler(analysis, timeout_s=timeout_s)
