"""The analysis as a sink of the gateway: the one place the ``analysis`` sink is declared.

Readings reach the analysis the way they reach every sink: as records read from the
spool (``AnalysisSink``, a gateway ``Transport``). So the analysis has its own spool
position, sees exactly what was spooled, and after a restart resumes after the last poll
it took in; nothing in the gateway's hot path waits for it. It takes records of kind
telemetry only.

Its output goes back into the spool (``SpoolFindings``), one record of kind finding per
trigger event or finding, with the device it is about and its own sequence numbers (the
device's readings keep theirs without holes). From there the gateway's other sinks carry
it like telemetry, durably: JSON Lines, the MCP uplink, and MQTT (on the analysis
topic). A finding leaves the analysis backlog only once its record is committed.

``ANALYSIS`` (``analysis_sink()``) is its ``SinkType``: the ``[analysis]`` table
(``AnalysisConfig``, validated with exact paths), the factory, and no drops (it is
in-process: it never gives up on a record).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from mcptool.analysis.config import AnalysisConfig
from mcptool.analysis.metrics import AnalysisCollector
from mcptool.analysis.model import AnalysisModel
from mcptool.analysis.pipeline import AnalysisPipeline, Sink
from mcptool.analysis.polls import analyse_poll, fan_out
from mcptool.gateway.config import GatewayConfig
from mcptool.gateway.sinks.mcp import body_limit
from mcptool.gateway.sinks.registry import SinkContext, SinkType
from mcptool.gateway.spool import Kind, Record, Spool

__all__ = [
    "ANALYSIS",
    "RECORD_LIMIT",
    "AnalysisSink",
    "SpoolFindings",
    "analysis_sink",
    "fit",
    "record_limit",
]

RECORD_LIMIT = 12_000  # bytes: well inside one MCP frame (16 KiB) with the DATA header

log = logging.getLogger(__name__)


class AnalysisSink:
    """A gateway sink that hands every spooled poll to the analysis pipeline."""

    name = "analysis"
    hint = "the analysis runs in the gateway: see its log lines"

    def __init__(self, pipeline: AnalysisPipeline) -> None:
        self.pipeline = pipeline
        self._stopped: asyncio.Future[None] | None = None

    async def connect(self) -> None:
        await self.pipeline.start()
        self._stopped = asyncio.get_running_loop().create_future()

    async def send(self, record: Record) -> None:
        if record.kind is not Kind.TELEMETRY:
            return  # findings (ours) on their way to the other sinks
        try:
            analyse_poll(self.pipeline, json.loads(record.payload))
        except Exception as exc:  # one odd record must not stop the analysis of the rest
            log.warning("analysis skipped record %d of %s: %s", record.id, record.device, exc)

    async def watch(self) -> None:
        assert self._stopped is not None
        await self._stopped  # in-process: never lost

    async def close(self) -> None:
        """The pipeline outlives a reconnect; the gateway closes it once stopped."""


class SpoolFindings:
    """A pipeline sink that appends each analysis record to the gateway's spool."""

    def __init__(self, spool: Callable[[], Spool], node: str, limit: int = RECORD_LIMIT) -> None:
        self._spool = spool
        self.node = node
        self.limit = limit

    async def __call__(self, record: dict[str, Any]) -> None:
        spool = self._spool()
        device = str(record.get("device", "gateway"))
        seq = spool.reserve(device, 1, Kind.FINDING)
        now = time.time()
        message = {"node": self.node, "kind": Kind.FINDING.value, "seq": seq}
        message = {**message, "ts": round(now * 1000), **record}
        spool.append(device, seq, 1, now, fit(message, self.limit), Kind.FINDING)
        await spool.flush()  # committed: from here on the spool's guarantees hold


def fit(message: dict[str, Any], limit: int) -> bytes:
    """The message as JSON of at most ``limit`` bytes, so that every sink takes it (an
    MCP frame holds 16 KiB): per-point statistics go first, then trigger details, then
    the text is cut; ``truncated`` says so."""
    payload = _dump(message)
    if len(payload) <= limit:
        return payload
    message = {**message, "truncated": True, "statistics": {}}
    payload = _dump(message)
    if len(payload) > limit and message.get("triggers"):
        message["triggers"] = [
            {k: t.get(k) for k in ("rule", "points", "severity")} for t in message["triggers"]
        ]
        payload = _dump(message)
    while len(payload) > limit:
        longest = max(
            (k for k, v in message.items() if isinstance(v, str | list)),
            key=lambda k: len(_dump(message[k])),
        )
        value = message[longest]
        if not value:
            break  # only fixed fields left: over the limit, the uplink reports its drop
        message[longest] = value[: len(value) // 2]
        payload = _dump(message)
    return payload


def record_limit(config: GatewayConfig) -> int:
    """Bytes an analysis record may take: ``RECORD_LIMIT``, or less when the uplink's
    frames (``[uplink] max_frame``) are smaller, so that a finding is cut to fit rather
    than dropped whole on the uplink."""
    if config.uplink is None:
        return RECORD_LIMIT
    return min(RECORD_LIMIT, body_limit(config.uplink.max_frame))


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _build(
    settings: AnalysisConfig,
    context: SinkContext,
    *,
    model: AnalysisModel | None,
    extra_sinks: Iterable[Sink],
) -> AnalysisSink:
    config = context.config
    if settings.queue_path is None:  # the backlog sits next to the spool
        spool_path = config.base_dir / config.spool.path
        queue = spool_path.with_name(spool_path.name + ".analysis")
        settings = dataclasses.replace(settings, queue_path=queue)
    own = None
    if model is None:
        from mcptool.analysis.ollama_model import OllamaModel

        model = own = OllamaModel.connect(settings.ollama, settings)
    findings = SpoolFindings(context.spool, config.node, record_limit(config))
    pipeline = AnalysisPipeline(settings, sink=fan_out(findings, *extra_sinks), model=model)
    for device in config.devices:
        pipeline.add_device(device.name, device.points)
    context.metrics.register(AnalysisCollector(pipeline))

    async def finish() -> None:
        try:
            await pipeline.close()
        finally:
            if own is not None:
                await own.aclose()

    context.at_stop(finish)
    return AnalysisSink(pipeline)


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
        describe=lambda settings: f"analysis by {settings.model}",
        files=lambda s: [] if s.queue_path is None else [("queue_path", s.queue_path, True)],
    )


ANALYSIS = analysis_sink()
