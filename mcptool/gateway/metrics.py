"""Prometheus metrics of one gateway, on its own registry (several gateways may share a
process in tests), served by prometheus_client's threaded HTTP server on ``/metrics``.

Counters the poller feeds are updated as things happen; spool and destination figures
(depth, age, lag, link state, drops) are read when scraped, so they cost nothing in
between. Drops come from the spool's ledger (``Spool.drops``), which holds the spool's
own and those destinations reported, so they survive restarts like the spool file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mcptool.errors import UsageError
from mcptool.gateway.sinks.forwarder import SinkState

if TYPE_CHECKING:
    from mcptool.gateway.sinks.forwarder import Forwarder
    from mcptool.gateway.spool import Spool

__all__ = ["GatewayMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter("mcptool_gateway_polls", "Polls completed", ["device"], registry=r)
        self.errors = Counter(
            "mcptool_gateway_poll_errors",
            "Failed reads and connects",
            ["device", "kind"],
            registry=r,
        )
        self.overruns = Counter(
            "mcptool_gateway_poll_overruns",
            "Polls longer than the interval",
            ["device"],
            registry=r,
        )
        self.readings = Counter(
            "mcptool_gateway_readings", "Readings produced", ["quality"], registry=r
        )
        self.latency = Histogram(
            "mcptool_gateway_poll_duration_seconds",
            "Time to run one poll of a device (all its reads)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.device_up = Gauge(
            "mcptool_gateway_device_up", "1 while the device answers", ["device"], registry=r
        )
        self._server: WSGIServer | None = None

    def watch(self, spool: Spool, forwarders: Callable[[], Iterable[Forwarder]]) -> None:
        self.registry.register(_LiveCollector(spool, forwarders))

    def serve(self, host: str, port: int) -> int:
        """Start ``/metrics`` on host:port (0 = any free port); returns the port."""
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise UsageError(
                f"metrics on {host}:{port}: {exc.strerror or exc}; pick another [metrics] port"
            ) from None
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _LiveCollector(Collector):
    def __init__(self, spool: Spool, forwarders: Callable[[], Iterable[Forwarder]]) -> None:
        self.spool = spool
        self.forwarders = forwarders

    def collect(self) -> Iterator[Metric]:
        # runs in the HTTP server's thread while the loop changes the spool's index; a
        # read that lands mid-compaction is simply taken again
        for _ in range(3):
            try:
                stats = self.spool.stats()
                ages = {f.name: self.spool.lag_seconds(f.name) for f in self.forwarders()}
                drops = self.spool.drops()
                break
            except (IndexError, RuntimeError):
                continue
        else:
            return
        yield GaugeMetricFamily(
            "mcptool_gateway_spool_depth_readings",
            "Readings in the spool not yet acknowledged by every destination",
            value=stats.depth,
        )
        yield GaugeMetricFamily(
            "mcptool_gateway_spool_oldest_age_seconds",
            "Age of the oldest reading not yet acknowledged by every destination",
            value=stats.oldest_age,
        )
        yield GaugeMetricFamily(
            "mcptool_gateway_spool_ok",
            "1 while the spool writes, 0 during an outage (disk full, I/O error)",
            value=1.0 if self.spool.healthy else 0.0,
        )
        yield CounterMetricFamily(
            "mcptool_gateway_spool_write_errors",
            "Spool commits that failed (each retry counts)",
            value=self.spool.write_errors,
        )
        yield CounterMetricFamily(
            "mcptool_gateway_spool_dropped_readings",
            "Readings dropped by the spool limit policy",
            value=stats.dropped,
        )
        # every drop, wherever it happened: one family so that one query finds all losses
        dropped = CounterMetricFamily(
            "mcptool_gateway_dropped_readings",
            "Readings dropped for good: by the spool limit policy (where=spool) or by a"
            " destination that cannot ever deliver them (where=<sink>), per device and reason",
            labels=["device", "where", "reason"],
        )
        for (where, device, kind), readings in sorted(drops.items()):
            dropped.add_metric([device, where, kind], readings)
        yield dropped
        lag = GaugeMetricFamily(
            "mcptool_gateway_sink_lag_readings", "Readings not yet acknowledged", labels=["sink"]
        )
        age = GaugeMetricFamily(
            "mcptool_gateway_sink_lag_seconds",
            "Age of the oldest reading not yet acknowledged",
            labels=["sink"],
        )
        acked = CounterMetricFamily(
            "mcptool_gateway_sink_acked_records", "Records acknowledged", labels=["sink"]
        )
        sent = CounterMetricFamily(
            "mcptool_gateway_sink_sent_records", "Records sent (resends included)", labels=["sink"]
        )
        connects = CounterMetricFamily(
            "mcptool_gateway_sink_connects", "Successful connects", labels=["sink"]
        )
        state = GaugeMetricFamily(
            "mcptool_gateway_sink_state", "1 for the current link state", labels=["sink", "state"]
        )
        for forwarder in self.forwarders():
            name = forwarder.name
            lag.add_metric([name], stats.lag.get(name, 0))
            age.add_metric([name], ages.get(name, 0.0))
            acked.add_metric([name], forwarder.acked)
            sent.add_metric([name], forwarder.sent)
            connects.add_metric([name], forwarder.connects)
            for value in SinkState:
                state.add_metric([name, value.value], 1.0 if forwarder.state == value else 0.0)
        yield from (lag, age, acked, sent, connects, state)
