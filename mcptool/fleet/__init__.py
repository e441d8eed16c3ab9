"""The fleet: hubs as stateless ingest into a NATS JetStream cluster, analysis workers
that scale by starting more of them. See docs/FLEET.md.

Needs the ``fleet`` extra (``nats-py``): ``pip install 'mcptool[fleet]'``.
"""

from mcptool.fleet.baselines import BaselineStore, baseline_key
from mcptool.fleet.ingest import FleetIngest, StoreFailed, poll_of
from mcptool.fleet.streams import StreamSettings, ensure_consumer, ensure_streams, stream_configs
from mcptool.fleet.subjects import (
    DATA_STREAM,
    FINDINGS_STREAM,
    WINDOWS_STREAM,
    data_subject,
    finding_id,
    reading_id,
    token,
    untoken,
)
from mcptool.fleet.windows import ClosedWindow, OpenWindow, Placement, WindowTracker
from mcptool.fleet.worker import FleetWorker, analysis_config

__all__ = [
    "DATA_STREAM",
    "FINDINGS_STREAM",
    "WINDOWS_STREAM",
    "BaselineStore",
    "ClosedWindow",
    "FleetIngest",
    "FleetWorker",
    "OpenWindow",
    "Placement",
    "StoreFailed",
    "StreamSettings",
    "WindowTracker",
    "analysis_config",
    "baseline_key",
    "data_subject",
    "ensure_consumer",
    "ensure_streams",
    "finding_id",
    "poll_of",
    "reading_id",
    "stream_configs",
    "token",
    "untoken",
]
