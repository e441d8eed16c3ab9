"""The gateway in-process: poller -> spool -> forwarders, one asyncio loop.

``async with Gateway(config) as gw:`` starts polling and forwarding; leaving the block
stops polling, commits what is pending, gives sinks ``drain_timeout`` seconds to
catch up, publishes the gateway's ``offline`` status and closes the spool. Whatever is
not delivered by then stays in the spool for the next start.

Each poll becomes one record of kind telemetry: a JSON message (see ``encoding``) with
the node, the device, and every reading with its point, value, quality, timestamp and
per-device sequence number. The same poll updates ``current``, the latest value of each
point. The sinks are made from the config's sink registry (``sinks.registry``); the
retained statuses go out through ``statuses`` (``status``), on the connection of the
sink that carries them (MQTT).

Every drop takes one path: the spool's own (limit policy) and those of a destination that
gives up on readings for good (a transport's ``on_drop``, which the gateway points at
``Spool.report_drop``) reach ``Gateway._on_drop``, which logs them; the spool counts them
per place, device and kind (kept across restarts), and ``/metrics``, the published gateway
status, ``status()`` and the summary logged at stop all read those counts.

With ``[tracing]`` each poll is a trace (``tracing``): its message carries the trace
context, the spool ends each poll's spool span at the commit that holds it, and the
uplink sends under a span of its own; without it the poll path makes no span at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mcptool.gateway.config import GatewayConfig
from mcptool.gateway.current import CurrentValues
from mcptool.gateway.encoding import PollEncoder
from mcptool.gateway.metrics import GatewayMetrics
from mcptool.gateway.sinks.forwarder import Forwarder, SinkState, Transport
from mcptool.gateway.sinks.registry import SinkContext
from mcptool.gateway.spool import Dropped, Spool
from mcptool.gateway.status import StatusPublisher
from mcptool.modbus.poller import DeviceStatus, ErrorKind, Poller, PollerHooks, PollResult

if TYPE_CHECKING:
    from mcptool.gateway.tracing import GatewayTracing, TracedPoll

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
        self.statuses: StatusPublisher | None = None
        self.transports: list[Transport] = []
        self._at_stop: list[Callable[[], Awaitable[None]]] = []
        self.tracing: GatewayTracing | None = None
        if config.tracing is not None:
            # imported on use: a gateway without [tracing] never loads OpenTelemetry
            from mcptool.gateway.tracing import GatewayTracing

            self.tracing = GatewayTracing(config.tracing, config.node)
        context = SinkContext(
            config,
            lambda: self.spool,
            self.metrics.registry,
            self._at_stop.append,
            tracing=self.tracing,
        )
        self._status_sink: Transport | None = None
        windows: dict[str, int] = {}
        reporting: set[str] = set()
        for sink, settings in config.enabled_sinks():
            transport = sink.build(settings, context)
            self.transports.append(transport)
            windows[sink.name] = sink.window(settings)
            if sink.drop_kinds:
                reporting.add(sink.name)
            if sink.statuses is not None and self.statuses is None:
                self._status_sink = transport
                status_topic, gateway_topic = sink.statuses(settings)
                self.statuses = StatusPublisher(
                    transport,  # type: ignore[arg-type]
                    config.node,
                    status_topic=status_topic,
                    gateway_topic=gateway_topic,
                    summary=self._summary,
                )
        self.transports.extend(transports or [])
        spool = config.spool
        self.spool = Spool(
            config.base_dir / spool.path,
            sinks=[t.name for t in self.transports],
            synchronous=spool.synchronous,
            commit_interval=spool.commit_interval,
            max_readings=spool.max_readings,
            policy=spool.policy,
            max_pending=spool.max_pending,
            keep=spool.keep,
            on_drop=self._on_drop,
            on_health=self._on_spool_health,
            on_commit=self.tracing.committed if self.tracing is not None else None,
        )
        for transport in self.transports:
            # a sink that can give up on records reports them into the spool's ledger,
            # which passes them on to _on_drop like its own
            if transport.name in reporting or getattr(transport, "on_drop", False) is None:
                transport.on_drop = self.spool.report_drop  # type: ignore[attr-defined]
        self.forwarders = [
            Forwarder(self.spool, t, window=windows.get(t.name, 100)) for t in self.transports
        ]
        self.poller = Poller(config.devices, _Hooks(self))
        self.current = CurrentValues(config.devices)
        self._encoders = {
            d.name: PollEncoder(config.node, d.name, d.points) for d in config.devices
        }
        self.produced = 0
        self.started = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._last_drop_publish = 0.0
        self._drop_publish: asyncio.TimerHandle | None = None
        self.run_dropped: dict[tuple[str, str], int] = {}  # (where, device): since start

    def sink(self, name: str) -> Transport:
        """The sink called ``name`` (``KeyError`` if there is none)."""
        for transport in self.transports:
            if transport.name == name:
                return transport
        raise KeyError(name)

    # -- life cycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self.started = time.time()
        try:
            await self.spool.open()
        except BaseException:
            await self._finish_sinks()  # what the sinks' factories opened (a model client)
            self._close_tracing()  # its exporter's thread
            raise
        self.metrics.watch(self.spool, lambda: self.forwarders)
        if self.config.metrics is not None:
            try:
                self.metrics_port = self.metrics.serve(
                    self.config.metrics.host, self.config.metrics.port
                )
            except BaseException:
                try:
                    await self.spool.close()
                finally:
                    await self._finish_sinks()
                    self._close_tracing()
                raise
        for forwarder in self.forwarders:
            self._tasks.append(asyncio.create_task(forwarder.run(), name=f"sink {forwarder.name}"))
        self.poller.start()

    async def stop(self) -> None:
        """Stop polling, let destinations catch up, say offline, close the spool. Raises
        ``SpoolError`` (after everything is stopped) if the spool could not store what
        waited in memory: those readings are lost, and the spool logged which."""
        await self.poller.stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.drain_timeout):
                await self.wait_delivered()
        # before the spool closes: what a sink does at stop may still store records (the
        # analysis judges its open windows and says so); they go out now if there is time,
        # else with the next start
        try:
            await self._finish_sinks()
        except Exception:  # a sink's bug must not keep the spool from its last commit
            log.exception("a sink's work at stop failed; stopping the rest")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.drain_timeout):
                await self.wait_delivered()
        if self._drop_publish is not None:
            self._drop_publish.cancel()  # the offline status is the last word
            self._drop_publish = None
        if self.statuses is not None:
            # while the forwarder still holds the connection: stopping it closes it
            now = time.time()
            offline = {
                device.name: DeviceStatus(device.name, False, "gateway stopped", now).as_dict()
                for device in self.config.devices
            }
            if not await self.statuses.say_offline(offline):
                log.warning(
                    "mqtt: could not publish the offline status at stop; the broker shows"
                    " the last one (or the will, once it notices the connection is gone)"
                )
            await self.statuses.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._status_sink is not None:
            await self._status_sink.close()
        try:
            await self.spool.close()  # its last commit may still drop (drop_oldest)
        finally:
            self.metrics.close()
            self._close_tracing()  # after the spool's last commit: it ends spool spans
            if self.run_dropped:
                summary = _drop_summary(self.run_dropped)
                log.warning("readings dropped while running: %s", summary)
            await self._finish_sinks()  # if a step above failed before they ran

    def _close_tracing(self) -> None:
        if self.tracing is not None:
            self.tracing.close()

    async def _finish_sinks(self) -> None:
        """Run what the sinks asked to run once the gateway stopped (once)."""
        finishing, self._at_stop = self._at_stop, []
        for finish in finishing:
            await finish()

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
        first = self.spool.reserve(result.device, len(result.points))
        tracing = self.tracing
        traced = tracing.poll(result, first) if tracing is not None else None
        if tracing is None or traced is None:
            self._store(result, first, None)
            return
        # its spool span current: what is logged meanwhile (a spool drop) names the trace
        with tracing.current(traced):
            self._store(result, first, traced)

    def _store(self, result: PollResult, first: int, traced: TracedPoll | None) -> None:
        """Spool and count one poll; a traced one's message carries its trace context and
        its metrics its trace id (an exemplar)."""
        count = len(result.points)
        encoder = self._encoders[result.device]
        exemplar = None
        if traced is None:
            payload = encoder.encode(result, first)
        else:
            payload = encoder.encode(result, first, traced.traceparent)
            exemplar = traced.exemplar
        self.spool.append(result.device, first, count, result.timestamp, payload)
        self.current.update(result, first)
        self.produced += count
        metrics = self.metrics
        metrics.polls.labels(result.device).inc(exemplar=exemplar)
        metrics.latency.observe(result.duration, exemplar)
        bad = len(result.errors)
        metrics.readings.labels("good").inc(count - bad)
        if bad:
            metrics.readings.labels("bad").inc(bad)

    def _on_status(self, status: DeviceStatus) -> None:
        self.metrics.device_up.labels(status.device).set(1 if status.online else 0)
        state = "online" if status.online else f"offline ({status.reason})"
        bad = f", bad points: {', '.join(status.bad_points)}" if status.bad_points else ""
        log.info("device %s %s%s", status.device, state, bad)
        if self.statuses is not None:
            self.statuses.device(status.device, status.as_dict())

    def _on_drop(self, dropped: Dropped) -> None:
        log.warning("%s", dropped)
        if self.tracing is not None:
            self.tracing.dropped(dropped)
        key = (dropped.where, dropped.device)
        self.run_dropped[key] = self.run_dropped.get(key, 0) + dropped.count
        if self.statuses is None or self._drop_publish is not None:
            return
        # at most one status a second, and always one after the last drop
        wait = self._last_drop_publish + 1.0 - time.monotonic()
        if wait <= 0:
            self._publish_drops()
        else:
            loop = asyncio.get_running_loop()
            self._drop_publish = loop.call_later(wait, self._publish_drops)

    def _on_spool_health(self, ok: bool, detail: str) -> None:
        if ok:
            log.warning("spool %s writable again %s", self.spool.path, detail)
        else:
            log.error(
                "%s: readings wait in memory (up to %d, then [spool] policy %s applies) and"
                " go to the destinations from there; free disk space or fix the path, the"
                " gateway retries by itself",
                detail,
                self.spool.max_pending,
                self.spool.policy,
            )
        if self.statuses is not None:
            self.statuses.gateway_changed()

    def _publish_drops(self) -> None:
        self._drop_publish = None
        self._last_drop_publish = time.monotonic()
        if self.statuses is not None:
            self.statuses.gateway_changed()

    # -- status ---------------------------------------------------------------------------

    def _summary(self) -> dict[str, object]:
        """The published (retained) gateway status: readings dropped per device, by the
        spool and by each destination, counted since the spool file was created."""
        spool = self.spool
        health = {"state": "ok"} if spool.healthy else {"state": "degraded"}
        if not spool.healthy:
            health["spool_error"] = spool.last_error
        return {
            "node": self.config.node,
            "devices": len(self.config.devices),
            **health,
            "spool": {"policy": spool.policy, "dropped": spool.dropped, "ok": spool.healthy},
            "sinks": {
                f.name: {"dropped": self.spool.sink_dropped(f.name)} for f in self.forwarders
            },
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
                "ok": self.spool.healthy,
                "error": self.spool.last_error,
                "write_errors": self.spool.write_errors,
            },
            "sinks": [
                {
                    "name": f.name,
                    "state": f.state.value,
                    "lag": stats.lag.get(f.name, 0),
                    "acked": f.acked,
                    "dropped": sum(self.spool.sink_dropped(f.name).values()),
                    "error": f.last_error if f.state != SinkState.CONNECTED else "",
                    # a destination may say more (the analysis: its routes' health)
                    "detail": getattr(f.transport, "detail", lambda: "")(),
                }
                for f in self.forwarders
            ],
        }


def _drop_summary(counts: dict[tuple[str, str], int]) -> str:
    """``spool: d2 40; uplink: d0 3, d1/analysis 1`` (readings per place and device)."""
    places: dict[str, list[str]] = {}
    for (where, device), readings in sorted(counts.items()):
        places.setdefault(where, []).append(f"{device} {readings}")
    return "; ".join(f"{where}: {', '.join(devices)}" for where, devices in places.items())
