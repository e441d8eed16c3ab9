"""The gateway in-process: poller -> spool -> forwarders, one asyncio loop.

``async with Gateway(config) as gw:`` starts polling and forwarding; leaving the block
stops polling, commits what is pending, gives destinations ``drain_timeout`` seconds to
catch up, publishes the gateway's ``offline`` status and closes the spool. Whatever is
not delivered by then stays in the spool for the next start.

Each poll becomes one record: a JSON message (see ``encoding``) with the node, the
device, and every reading with its point, value, quality, timestamp and per-device
sequence number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from mcptool.gateway.config import GatewayConfig
from mcptool.gateway.encoding import PollEncoder
from mcptool.gateway.metrics import GatewayMetrics
from mcptool.gateway.sinks.forwarder import Forwarder, SinkState, Transport
from mcptool.gateway.sinks.jsonl import JsonlTransport
from mcptool.gateway.sinks.mqtt import MqttTransport
from mcptool.gateway.spool import Dropped, Spool
from mcptool.modbus.poller import DeviceStatus, ErrorKind, Poller, PollerHooks, PollResult

__all__ = ["Gateway"]

log = logging.getLogger(__name__)


class _Hooks(PollerHooks):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def on_result(self, result: PollResult) -> None:
        self.gateway._on_result(result)

    def on_status(self, status: DeviceStatus) -> None:
        self.gateway._on_status(status)

    def on_error(self, device: str, kind: ErrorKind) -> None:
        self.gateway.metrics.errors.labels(device, kind.value).inc()

    def on_overrun(self, device: str) -> None:
        self.gateway.metrics.overruns.labels(device).inc()


class Gateway:
    """The whole gateway; see the module doc. Extra transports (tests, plug-ins) may be
    given; they get their own spool position like the configured ones."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        transports: list[Transport] | None = None,
        drain_timeout: float = 2.0,
    ) -> None:
        self.config = config
        self.drain_timeout = drain_timeout
        self.metrics = GatewayMetrics()
        self.metrics_port: int | None = None
        self.mqtt: MqttTransport | None = None
        self.transports: list[Transport] = []
        windows: dict[str, int] = {}
        if config.mqtt is not None:
            self.mqtt = MqttTransport(
                config.mqtt, config.node, base_dir=config.base_dir, gateway_status=self._summary
            )
            self.transports.append(self.mqtt)
            windows["mqtt"] = config.mqtt.window
        if config.jsonl is not None:
            self.transports.append(JsonlTransport(config.jsonl.path, base_dir=config.base_dir))
        if config.uplink is not None:
            from mcptool.gateway.sinks.mcp import UplinkTransport

            self.transports.append(
                UplinkTransport(config.uplink, config.node, config.base_dir, on_drop=self._on_drop)
            )
            windows["uplink"] = config.uplink.window
        self.transports.extend(transports or [])
        spool = config.spool
        self.spool = Spool(
            config.base_dir / spool.path,
            sinks=[t.name for t in self.transports],
            synchronous=spool.synchronous,
            commit_interval=spool.commit_interval,
            max_readings=spool.max_readings,
            policy=spool.policy,
            on_drop=self._on_drop,
        )
        self.forwarders = [
            Forwarder(self.spool, t, window=windows.get(t.name, 100)) for t in self.transports
        ]
        self.poller = Poller(config.devices, _Hooks(self))
        self._encoders = {
            d.name: PollEncoder(config.node, d.name, d.points) for d in config.devices
        }
        self.produced = 0
        self.started = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._last_drop_publish = 0.0

    # -- life cycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self.started = time.time()
        await self.spool.open()
        self.metrics.watch(self.spool, lambda: self.forwarders)
        if self.config.metrics is not None:
            try:
                self.metrics_port = self.metrics.serve(
                    self.config.metrics.host, self.config.metrics.port
                )
            except BaseException:
                await self.spool.close()
                raise
        for forwarder in self.forwarders:
            self._tasks.append(asyncio.create_task(forwarder.run(), name=f"sink {forwarder.name}"))
        self.poller.start()

    async def stop(self) -> None:
        await self.poller.stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.drain_timeout):
                await self.wait_delivered()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.mqtt is not None:
            await self.mqtt.stop()
        await self.spool.close()
        self.metrics.close()

    async def wait_delivered(self) -> None:
        """Return once every destination acknowledged everything produced so far."""
        while True:
            await self.spool.flush()
            target = self.spool.committed_id
            if all(self.spool.position(f.name) >= target for f in self.forwarders):
                return
            await asyncio.sleep(0.02)

    # -- poller events ------------------------------------------------------------------

    def _on_result(self, result: PollResult) -> None:
        count = len(result.points)
        first = self.spool.reserve(result.device, count)
        payload = self._encoders[result.device].encode(result, first)
        self.spool.append(result.device, first, count, result.timestamp, payload)
        self.produced += count
        metrics = self.metrics
        metrics.polls.labels(result.device).inc()
        metrics.latency.observe(result.duration)
        bad = len(result.errors)
        metrics.readings.labels("good").inc(count - bad)
        if bad:
            metrics.readings.labels("bad").inc(bad)

    def _on_status(self, status: DeviceStatus) -> None:
        self.metrics.device_up.labels(status.device).set(1 if status.online else 0)
        state = "online" if status.online else f"offline ({status.reason})"
        bad = f", bad points: {', '.join(status.bad_points)}" if status.bad_points else ""
        log.info("device %s %s%s", status.device, state, bad)
        if self.mqtt is not None:
            self.mqtt.device_status(status.device, status.as_dict())

    def _on_drop(self, dropped: Dropped) -> None:
        log.warning(
            "%s: dropped %s seq %d-%d",
            dropped.reason,
            dropped.device,
            dropped.seq_first,
            dropped.seq_last,
        )
        now = time.monotonic()
        if self.mqtt is not None and now - self._last_drop_publish > 1.0:
            self._last_drop_publish = now
            self.mqtt.gateway_changed()

    # -- status ---------------------------------------------------------------------------

    def _summary(self) -> dict[str, object]:
        return {
            "node": self.config.node,
            "devices": len(self.config.devices),
            "spool": {"policy": self.spool.policy, "dropped": self.spool.dropped},
        }

    def status(self) -> dict[str, Any]:
        """A snapshot for the live terminal status and for tests."""
        stats = self.spool.stats()
        devices = self.poller.statuses()
        return {
            "uptime": time.time() - self.started if self.started else 0.0,
            "produced": self.produced,
            "devices_online": sum(1 for d in devices if d.online),
            "devices": [d.as_dict() for d in devices],
            "spool": {
                "depth": stats.depth,
                "oldest_age": stats.oldest_age,
                "dropped": stats.dropped,
            },
            "sinks": [
                {
                    "name": f.name,
                    "state": f.state.value,
                    "lag": stats.lag.get(f.name, 0),
                    "acked": f.acked,
                    "error": f.last_error if f.state != SinkState.CONNECTED else "",
                }
                for f in self.forwarders
            ],
        }
