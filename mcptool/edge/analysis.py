"""Analysis in the gateway: the glue between ``mcptool.gateway`` and the pipeline.

Readings reach the analysis the way they reach every destination: as a gateway
``Transport`` reading the spool (``AnalysisTransport``). So the analysis has its own
spool position, sees exactly what was spooled, and after a restart resumes after the
last poll it took in; nothing in the gateway's hot path waits for it.

Its output goes back into the spool (``SpoolSink``), one record per trigger event or
finding, under the pseudo-device ``<device>/analysis`` (its own sequence numbers, so
the device's reading sequence has no holes). From there the gateway's destinations carry
it like telemetry, durably: JSON Lines, the MCP uplink, and MQTT. A finding leaves the
analysis backlog only once its record is committed to the spool.

``analyse_poll`` turns one poll message (the gateway's JSON, also what the hub receives
over the MCP link) into a pipeline observation; ``mcptool.analysis.hub`` uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mcptool.analysis.analyzer import PointInfo
from mcptool.analysis.config import AnalysisConfig
from mcptool.analysis.metrics import AnalysisCollector
from mcptool.analysis.model import AnalysisModel
from mcptool.analysis.pipeline import AnalysisPipeline, Sink

if TYPE_CHECKING:
    from mcptool.gateway import Gateway, GatewayConfig, Record, Spool

__all__ = [
    "ANALYSIS_SUFFIX",
    "AnalysisTransport",
    "SpoolSink",
    "analyse_poll",
    "analysed_gateway",
    "analysis_device",
    "fit",
    "gateway_with_analysis",
]

ANALYSIS_SUFFIX = "/analysis"
RECORD_LIMIT = 12_000  # bytes: well inside one MCP frame (16 KiB) with the DATA header

log = logging.getLogger(__name__)


def analysis_device(device: str) -> str:
    """The spool's pseudo-device that carries ``device``'s analysis records."""
    return device + ANALYSIS_SUFFIX


def analyse_poll(pipeline: AnalysisPipeline, message: Mapping[str, Any]) -> bool:
    """Feed one poll message (``{"device", "ts" (ms), "readings": [...]}``) to ``pipeline``.

    Returns False for messages that are not polls (analysis records, other types). A
    poll whose readings are all bad counts as a failed poll. Units found in the
    readings name the points of devices the pipeline was not told about.
    """
    device = message.get("device")
    readings = message.get("readings")
    if not isinstance(device, str) or not isinstance(readings, list) or "type" in message:
        return False
    readings = [r for r in readings if isinstance(r, dict)]
    t = float(message.get("ts", 0)) / 1000.0 or time.time()
    values: dict[str, Any] = {}
    good = 0
    for reading in readings:
        point = reading.get("point")
        if point is None:
            continue
        value = reading.get("value")
        values[point] = value
        good += value is not None
    analyzer = pipeline.analyzer
    if not analyzer.point_info(device):
        units = {r["point"]: r.get("unit", "") for r in readings if "point" in r}
        analyzer.add_device(device, [PointInfo(n, u) for n, u in units.items()])
    if good:
        pipeline.observe(device, t, values)
    else:
        pipeline.observe_failure(device, t)
    return True


class AnalysisTransport:
    """A gateway destination that hands every spooled poll to the analysis pipeline."""

    name = "analysis"

    def __init__(self, pipeline: AnalysisPipeline) -> None:
        self.pipeline = pipeline
        self._stopped: asyncio.Future[None] | None = None

    async def connect(self) -> None:
        await self.pipeline.start()
        self._stopped = asyncio.get_running_loop().create_future()

    async def send(self, record: Record) -> None:
        if record.device.endswith(ANALYSIS_SUFFIX):
            return  # our own output, on its way to the other destinations
        try:
            message = json.loads(record.payload)
            analyse_poll(self.pipeline, message)
        except Exception as exc:  # one odd record must not stop the analysis of the rest
            log.warning("analysis skipped record %d of %s: %s", record.id, record.device, exc)

    async def watch(self) -> None:
        assert self._stopped is not None
        await self._stopped  # in-process: never lost

    async def close(self) -> None:
        """The pipeline outlives a reconnect; its owner closes it after the gateway."""


class SpoolSink:
    """A pipeline sink that appends each analysis record to the gateway's spool."""

    def __init__(self, spool: Callable[[], Spool], node: str, limit: int = RECORD_LIMIT) -> None:
        self._spool = spool
        self.node = node
        self.limit = limit

    async def __call__(self, record: dict[str, Any]) -> None:
        spool = self._spool()
        device = analysis_device(str(record.get("device", "gateway")))
        seq = spool.reserve(device, 1)
        now = time.time()
        message = {"node": self.node, "seq": seq, "ts": round(now * 1000), **record}
        payload = fit(message, self.limit)
        spool.append(device, seq, 1, now, payload)
        await spool.flush()  # committed: from here on the spool's guarantees hold


def fit(message: dict[str, Any], limit: int) -> bytes:
    """The message as JSON of at most ``limit`` bytes, so that every destination takes
    it (an MCP frame holds 16 KiB): per-point statistics go first, then trigger details,
    then the text is cut; ``truncated`` says so."""
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
    from mcptool.gateway.sinks.mcp import body_limit

    return min(RECORD_LIMIT, body_limit(config.uplink.max_frame))


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def fan_out(*sinks: Sink) -> Sink:
    """One sink that hands each record to every sink in turn (e.g. spool and a live view)."""

    async def sink(record: dict[str, Any]) -> None:
        for each in sinks:
            await each(record)

    return sink


def gateway_with_analysis(
    config: GatewayConfig,
    analysis: AnalysisConfig,
    model: AnalysisModel | None,
    *,
    extra_sinks: Iterable[Sink] = (),
    **gateway_options: Any,
) -> tuple[Gateway, AnalysisPipeline]:
    """A ``Gateway`` whose polls are analysed and whose findings it forwards.

    Run the gateway as usual; close the pipeline after the gateway stopped:
    ``async with gateway: ...`` then ``await pipeline.close()``.
    """
    from mcptool.gateway import Gateway

    holder: list[Gateway] = []
    sink = SpoolSink(lambda: holder[0].spool, config.node, record_limit(config))
    if analysis.queue_path is None:
        spool_path = config.base_dir / config.spool.path
        analysis = _with_queue(analysis, spool_path.with_name(spool_path.name + ".analysis"))
    pipeline = AnalysisPipeline(analysis, sink=fan_out(sink, *extra_sinks), model=model)
    for device in config.devices:
        pipeline.add_device(device.name, device.points)
    transports = [AnalysisTransport(pipeline), *gateway_options.pop("transports", [])]
    gateway = Gateway(config, transports=transports, **gateway_options)
    gateway.metrics.registry.register(AnalysisCollector(pipeline))
    holder.append(gateway)
    return gateway, pipeline


@contextlib.asynccontextmanager
async def analysed_gateway(
    config: GatewayConfig,
    analysis: AnalysisConfig,
    *,
    model: AnalysisModel | None = None,
    **gateway_options: Any,
) -> AsyncIterator[Gateway]:
    """``async with analysed_gateway(config, config.analysis) as gw:`` in place of
    ``async with Gateway(config) as gw:``: the same gateway, with its polls analysed by
    the Ollama at ``analysis.ollama`` (or ``model``, which the caller then closes)."""
    own = None
    if model is None:
        from mcptool.analysis.ollama_model import OllamaModel

        model = own = OllamaModel.connect(analysis.ollama, analysis)
    gateway, pipeline = gateway_with_analysis(config, analysis, model, **gateway_options)
    try:
        async with gateway:
            yield gateway
    finally:
        await pipeline.close()
        if own is not None:
            await own.aclose()


def _with_queue(config: AnalysisConfig, path: Any) -> AnalysisConfig:
    from dataclasses import replace

    return replace(config, queue_path=path)
