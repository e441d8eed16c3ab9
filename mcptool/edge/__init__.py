"""The composition layer: one edge node's config and its wiring.

``mcptool.gateway`` (poll, spool, sinks) and ``mcptool.analysis`` (statistics, triggers,
findings) do not know each other; this package puts them together. It owns the whole
TOML config (``load_config``: the gateway's tables and every sink's, ``[analysis]``
included), declares the ``analysis`` sink (``edge.analysis``), and gives the commands
one entry point each: ``edge_gateway`` for ``gateway run`` and ``demo``,
``hub_analysis`` for ``hub``. See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Iterable

from mcptool.analysis.model import AnalysisModel
from mcptool.analysis.pipeline import Sink
from mcptool.edge.analysis import ANALYSIS, AnalysisSink, analysis_sink
from mcptool.edge.config import EDGE_SINKS, analysis_config, load_config, parse_config
from mcptool.edge.hub import hub_analysis
from mcptool.gateway import Gateway, GatewayConfig
from mcptool.gateway.sinks.forwarder import Transport

__all__ = [
    "ANALYSIS",
    "EDGE_SINKS",
    "AnalysisSink",
    "analysis_config",
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
