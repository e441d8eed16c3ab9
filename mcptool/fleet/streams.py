"""The three streams of a fleet and how they are created.

- ``FLEET_DATA`` (``fleet.data.>``, ``fleet.event.>``): limits retention, file storage,
  replicated, with a duplicate window long enough to cover a node's failover to another
  hub (a node resends whatever was not acknowledged; the window must outlast the
  reconnect, backoff included).
- ``FLEET_WINDOWS`` (``fleet.windows.>``): work-queue retention, so a window is deleted
  once a worker acknowledged it, and the duplicate window makes the two hubs that may
  both see a window close publish it once.
- ``FLEET_FINDINGS`` (``fleet.findings.>``): limits retention, one message per window by
  its id (``finding:<node>/<device>@<index>``), so a redelivered window's second finding
  is dropped by JetStream.
- ``FLEET_MQTT`` (``fleet.mqtt.>``): what gateways publish to NATS's MQTT listener, held
  (work queue, replicated, as long as ``FLEET_DATA`` keeps readings) until the bridge of
  one hub moved it into ``FLEET_DATA`` (:mod:`mcptool.fleet.bridge`).
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from mcptool.fleet.subjects import (
    BRIDGE,
    DATA_STREAM,
    FINDINGS_STREAM,
    MQTT_STREAM,
    WINDOWS_STREAM,
    WORKERS,
)

__all__ = [
    "StreamSettings",
    "bridge_config",
    "consumer_config",
    "ensure_consumer",
    "ensure_streams",
    "stream_configs",
]

_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class StreamSettings:
    replicas: int = 3
    duplicate_window_s: float = 600.0  # ten minutes: many backoffs longer than a failover
    data_max_age_s: float = 7 * _DAY
    findings_max_age_s: float = 30 * _DAY
    ack_wait_s: float = 30.0  # a worker that died: its windows go to another after this
    max_ack_pending: int = 1000
    # the MQTT bridge: a hub holds its lease this long without renewing it, and a message
    # it took is given again after as long (so the next holder gets it first)
    bridge_lease_s: float = 10.0
    bridge_batch: int = 64  # messages the bridge holds at once


def stream_configs(settings: StreamSettings) -> list[StreamConfig]:
    common = {
        "num_replicas": settings.replicas,
        "storage": StorageType.FILE,
        "duplicate_window": settings.duplicate_window_s,
        "allow_direct": True,
    }
    return [
        StreamConfig(
            name=DATA_STREAM,
            subjects=["fleet.data.>", "fleet.event.>"],
            retention=RetentionPolicy.LIMITS,
            max_age=settings.data_max_age_s,
            **common,
        ),
        StreamConfig(
            name=WINDOWS_STREAM,
            subjects=["fleet.windows.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            **common,
        ),
        StreamConfig(
            name=FINDINGS_STREAM,
            subjects=["fleet.findings.>"],
            retention=RetentionPolicy.LIMITS,
            max_age=settings.findings_max_age_s,
            **common,
        ),
        StreamConfig(
            name=MQTT_STREAM,
            subjects=["fleet.mqtt.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            max_age=settings.data_max_age_s,
            **common,
        ),
    ]


def consumer_config(settings: StreamSettings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=WORKERS,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.ack_wait_s,
        max_ack_pending=settings.max_ack_pending,
        max_deliver=-1,
        num_replicas=settings.replicas,
    )


def bridge_config(settings: StreamSettings) -> ConsumerConfig:
    """One consumer for every hub's bridge; the lease lets one hub at a time fetch, so a
    device's readings are stored in the order they were published."""
    return ConsumerConfig(
        durable_name=BRIDGE,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.bridge_lease_s,
        max_ack_pending=settings.bridge_batch,
        max_deliver=-1,
        num_replicas=settings.replicas,
    )


async def ensure_streams(js: JetStreamContext, settings: StreamSettings) -> None:
    """Create the streams that are missing (an existing stream is left as it is)."""
    for config in stream_configs(settings):
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)


async def ensure_consumer(
    js: JetStreamContext, settings: StreamSettings, *, stream: str = WINDOWS_STREAM
) -> None:
    """The workers' consumer (or, for ``MQTT_STREAM``, the bridge's), if it is missing."""
    config = bridge_config(settings) if stream == MQTT_STREAM else consumer_config(settings)
    try:
        await js.consumer_info(stream, str(config.durable_name))
    except NotFoundError:
        await js.add_consumer(stream, config)
