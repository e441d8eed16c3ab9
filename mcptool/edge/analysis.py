"""The analysis as a sink of the gateway: the one place the ``analysis`` sink is declared.

``ANALYSIS`` (``analysis_sink()``) is its ``SinkType``: the ``[analysis]`` table
(``AnalysisConfig``, validated with exact paths), the factory, and no drops (it is
in-process: it never gives up on a record). The factory wires the pipeline between the
spool and the spool (``edge.analysis_sink``: ``AnalysisSink`` reads polls,
``SpoolFindings`` writes findings back); it is imported only when a config has an
enabled ``[analysis]``, so a gateway without one does not load the analysis at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from mcptool.analysis.config import AnalysisConfig
from mcptool.gateway.config import GatewayConfig
from mcptool.gateway.sinks.registry import SinkContext, SinkType

if TYPE_CHECKING:
    from mcptool.analysis.model import AnalysisModel
    from mcptool.analysis.pipeline import Sink
    from mcptool.edge.analysis_sink import AnalysisSink

__all__ = ["ANALYSIS", "RECORD_LIMIT", "analysis_model", "analysis_sink", "record_limit"]

RECORD_LIMIT = 12_000  # bytes: well inside one MCP frame (16 KiB) with the DATA header


def record_limit(config: GatewayConfig) -> int:
    """Bytes an analysis record may take: ``RECORD_LIMIT``, or less when the uplink's
    frames (``[uplink] max_frame``) are smaller, so that a finding is cut to fit rather
    than dropped whole on the uplink."""
    if config.uplink is None:
        return RECORD_LIMIT
    from mcptool.gateway.sinks.mcp import body_limit  # the link: only with an uplink

    return min(RECORD_LIMIT, body_limit(config.uplink.max_frame))


def _build(
    settings: AnalysisConfig,
    context: SinkContext,
    *,
    model: AnalysisModel | None,
    extra_sinks: Iterable[Sink],
) -> AnalysisSink:
    from mcptool.analysis.metrics import AnalysisCollector
    from mcptool.analysis.pipeline import AnalysisPipeline
    from mcptool.analysis.polls import fan_out
    from mcptool.edge.analysis_sink import AnalysisSink, SpoolFindings

    config = context.config
    if settings.queue_path is None:  # the backlog sits next to the spool
        spool_path = config.base_dir / config.spool.path
        queue = spool_path.with_name(spool_path.name + ".analysis")
        settings = dataclasses.replace(settings, queue_path=queue)
    own: AnalysisModel | None = None
    if model is None:
        model = own = analysis_model(settings)
    findings = SpoolFindings(context.spool, config.node, record_limit(config))
    pipeline = AnalysisPipeline(settings, sink=fan_out(findings, *extra_sinks), model=model)
    for device in config.devices:
        # the config's descriptions ("rated current 170 A") reach the prompt's points
        points = [
            _described(p, config.info(device.name, p.name).description) for p in device.points
        ]
        pipeline.add_device(device.name, points, config.descriptions.get(device.name, ""))
    context.metrics.register(AnalysisCollector(pipeline))

    async def finish() -> None:
        try:
            await pipeline.close()
        finally:
            if own is not None:
                await own.aclose()  # type: ignore[attr-defined]

    context.at_stop(finish)
    return AnalysisSink(pipeline)


def analysis_model(settings: AnalysisConfig) -> AnalysisModel:
    """The model of ``[analysis]`` (``aclose`` it when done): a router over its
    ``routes``, the embedded model, or the Ollama at ``ollama``."""
    if settings.routes:
        return _router(settings)
    if settings.ollama == "embedded":
        # the local-model extra's model served in this process (analysis.embedded)
        from mcptool.analysis.embedded import EmbeddedModel

        return EmbeddedModel(settings)
    from mcptool.analysis.ollama_model import OllamaModel

    return OllamaModel.connect(settings.ollama, settings)


def _router(settings: AnalysisConfig) -> AnalysisModel:
    from mcptool.analysis.embedded import EmbeddedModel
    from mcptool.analysis.ollama_model import OllamaModel
    from mcptool.analysis.routing import Route, RoutedModel

    routes = []
    for r in settings.routes:
        url = r.ollama or settings.ollama
        each = dataclasses.replace(settings, model=r.model, ollama=url, routes=())
        if url == "embedded":  # in-process: not checked, it runs when the gateway does
            name, model, endpoint = f"{r.model}@embedded", EmbeddedModel(each), None
        else:
            client = OllamaModel.connect(url, each)
            name, model, endpoint = f"{r.model}@{client.client.url}", client, client.client.url
        routes.append(
            Route(name, model, r.weight, r.fallback, first_for=r.first_for, endpoint=endpoint)
        )
    return RoutedModel(routes, check_s=settings.route_check_s)


def _described(point: object, description: str) -> object:
    from mcptool.analysis.analyzer import PointInfo

    info = PointInfo.of(point)  # type: ignore[arg-type]
    return dataclasses.replace(info, description=description) if description else info


def analysis_sink(
    *, model: AnalysisModel | None = None, extra_sinks: Iterable[Sink] = ()
) -> SinkType:
    """The ``analysis`` sink type; ``model`` (which the caller then closes) in place of
    the Ollama at ``[analysis] ollama``, ``extra_sinks`` get every analysis record too."""
    return SinkType(
        name="analysis",
        settings=AnalysisConfig,
        build=partial(_build, model=model, extra_sinks=tuple(extra_sinks)),
        drop_kinds=(),  # in-process: it never gives up on a record
        delivers=False,  # its findings need a sink that carries them out
        enabled=lambda settings: settings.enabled,
        describe=lambda settings: (
            "analysis by the embedded model (qwen2.5-coder:0.5b, in-process)"
            if settings.ollama == "embedded"
            else f"analysis by {settings.model}"
        ),
        files=lambda s: [] if s.queue_path is None else [("queue_path", s.queue_path, True)],
    )


ANALYSIS = analysis_sink()
