"""Prometheus metrics of a fleet hub's ingest and of a worker, each on its own registry
(several share a process in tests), served on ``/metrics`` by prometheus_client."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["IngestMetrics", "WorkerMetrics"]

_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
_MODEL_BUCKETS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)


class _Served:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._server: WSGIServer | None = None

    def serve(self, host: str, port: int) -> int:
        """Start ``/metrics`` on host:port (0: any free port); returns the port (OSError
        when it cannot listen there)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class IngestMetrics(_Served):
    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.stored = Counter(
            "mcptool_fleet_frames_stored", "DATA frames stored in JetStream", registry=r
        )
        self.duplicates = Counter(
            "mcptool_fleet_frames_duplicate",
            "Frames JetStream already held (dropped by their node:seq id)",
            registry=r,
        )
        self.failures = Counter(
            "mcptool_fleet_store_failures",
            "Batches JetStream did not confirm in time (connection dropped unacknowledged)",
            registry=r,
        )
        self.windows = Counter(
            "mcptool_fleet_windows_closed", "Windows handed to the work queue", registry=r
        )
        self.windows_by_time = Counter(
            "mcptool_fleet_windows_closed_by_time",
            "Windows of silent devices closed at their deadline (also in windows_closed)",
            registry=r,
        )
        self.late = Counter(
            "mcptool_fleet_readings_late",
            "Readings stored after their window had closed (kept, not analysed)",
            registry=r,
        )
        self.mqtt_polls = Counter(
            "mcptool_fleet_mqtt_polls",
            "Messages the MQTT bridge took from FLEET_MQTT, by outcome (stored, duplicate: "
            "already stored by its id, refused: no telemetry poll)",
            ["outcome"],
            registry=r,
        )
        self.bridge_holding = Gauge(
            "mcptool_fleet_mqtt_bridge_holding",
            "1 while this hub holds the MQTT bridge's lease (one hub of the fleet at a time)",
            registry=r,
        )
        self.latency = Histogram(
            "mcptool_fleet_store_seconds",
            "From a socket read's frames to JetStream's confirmation of all of them",
            buckets=_STORE_BUCKETS,
            registry=r,
        )


class WorkerMetrics(_Served):
    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.windows = Counter(
            "mcptool_fleet_windows_analysed",
            "Windows analysed and acknowledged, by the record published",
            ["type"],
            registry=r,
        )
        self.findings = Counter(
            "mcptool_fleet_findings", "Findings published, by severity", ["severity"], registry=r
        )
        self.duplicates = Counter(
            "mcptool_fleet_findings_duplicate",
            "Findings JetStream already held (a redelivered window)",
            registry=r,
        )
        self.retries = Counter(
            "mcptool_fleet_window_retries",
            "Windows handed back (model unavailable or too slow)",
            registry=r,
        )
        self.in_flight = Gauge(
            "mcptool_fleet_windows_in_flight", "Windows this worker holds now", registry=r
        )
        self.baselines = Counter(
            "mcptool_fleet_baseline_updates",
            "Device baselines after a window: advanced, kept (a redelivered or older "
            "window), too_large",
            ["outcome"],
            registry=r,
        )
        self.model_latency = Histogram(
            "mcptool_fleet_model_call_seconds",
            "One model call of a window",
            buckets=_MODEL_BUCKETS,
            registry=r,
        )
