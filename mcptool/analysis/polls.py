"""Poll messages into the pipeline, and analysis records out to several sinks.

``analyse_poll`` turns one poll message (the telemetry JSON of ``mcptool.gateway.encoding``,
also what the hub receives over the MCP link) into a pipeline observation. It reads the
message's ``kind``: only telemetry is analysed (findings come back through the same
destinations and must not be analysed again).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mcptool.analysis.analyzer import PointInfo
from mcptool.analysis.pipeline import AnalysisPipeline, Sink

__all__ = ["TELEMETRY", "analyse_poll", "fan_out", "points_of"]

TELEMETRY = "telemetry"  # the ``kind`` of a poll message (mcptool.gateway.spool.Kind)


def analyse_poll(pipeline: AnalysisPipeline, message: Mapping[str, Any]) -> bool:
    """Feed one poll message (``{"device", "kind": "telemetry", "ts" (ms), "readings"}``)
    to ``pipeline``.

    Returns False for messages of another kind (findings, statuses) and for a message
    without a device or a list of readings. A poll whose readings are all bad counts as
    a failed poll. Units found in the readings name the points of devices the pipeline
    was not told about.
    """
    if message.get("kind") != TELEMETRY:
        return False
    device = message.get("device")
    readings = message.get("readings")
    if not isinstance(device, str) or not isinstance(readings, list):
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
        analyzer.add_device(device, points_of(message))
    if good:
        pipeline.observe(device, t, values)
    else:
        pipeline.observe_failure(device, t)
    return True


def points_of(message: Mapping[str, Any]) -> list[PointInfo]:
    """The points a poll message reads, with the units its readings give; a point whose
    value is a JSON boolean is discrete (a coil or a bool point: its changes are events,
    not a series for the z-score, stuck and flat-line rules)."""
    readings = message.get("readings")
    if not isinstance(readings, list):
        return []
    points = {
        r["point"]: PointInfo(
            r["point"], r.get("unit", ""), discrete=isinstance(r.get("value"), bool)
        )
        for r in readings
        if isinstance(r, dict) and "point" in r
    }
    return list(points.values())


def fan_out(*sinks: Sink) -> Sink:
    """One sink that hands each record to every sink in turn (e.g. spool and a live view)."""

    async def sink(record: dict[str, Any]) -> None:
        for each in sinks:
            await each(record)

    return sink
