"""The analysis sink at work: polls from the spool into the pipeline, findings back.

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
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from mcptool.analysis.pipeline import AnalysisPipeline
from mcptool.analysis.polls import analyse_poll
from mcptool.edge.analysis import RECORD_LIMIT
from mcptool.gateway.spool import Kind, Record, Spool

__all__ = ["AnalysisSink", "SpoolFindings", "fit"]

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

    def detail(self) -> str:
        """For the live status: each route's state when the analysis has several models
        (``routes: small:0.5b healthy, big:7b unhealthy``), else nothing."""
        status = getattr(self.pipeline.model, "status", None)
        if status is None:
            return ""
        states = []
        for route in status():
            state = "breaker open" if route["breaker"] == "open" else route["health"]
            states.append(f"{route['model']} {state}")
        return "routes: " + ", ".join(states)

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


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()
