"""Prometheus figures of the analysis, read from the pipeline when scraped.

``AnalysisCollector(pipeline)`` registers on any ``CollectorRegistry`` (the gateway's
own, so the analysis shows on the gateway's ``/metrics``); it costs nothing between
scrapes. Model call latency is a histogram the pipeline fills per answered call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from mcptool.analysis.pipeline import AnalysisPipeline

__all__ = ["LATENCY_BUCKETS", "AnalysisCollector", "LatencyHistogram"]

LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

_COUNTERS = {
    "windows": "Device windows closed",
    "windows_triggered": "Device windows where a trigger fired",
    "trigger_events": "Trigger events",
    "suppressed": "Flagged windows not sent to the model (same triggers within the cooldown)",
    "model_calls": "Model calls, repairs included",
    "repairs": "Invalid answers sent back once for repair",
    "invalid_answers": "Answers still invalid after the repair (reported, not published)",
    "model_unavailable": "Calls that found the model busy, down or missing",
    "model_rejected": "Requests the model refused",
    "backlog_dropped": "Flagged windows dropped because the backlog was full",
    "sink_errors": "Records the sink did not take",
    "ungrounded": "Model findings that quote numbers their window does not hold (flagged)",
    "severity_raised": "Model findings raised to their offline or threshold trigger's severity",
    "severity_lowered": "Model findings kept at warning: critical with no rule fired",
}


class LatencyHistogram:
    """Cumulative bucket counts, sum and count of answered model calls, in seconds."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.sum += seconds
        for i, bound in enumerate(self.buckets):
            if seconds <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def cumulative(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, count in zip((*map(str, self.buckets), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, float(total)))
        return out


class AnalysisCollector:
    def __init__(self, pipeline: AnalysisPipeline) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[Metric]:
        stats = self.pipeline.stats()
        for key, help_text in _COUNTERS.items():
            yield CounterMetricFamily(f"mcptool_analysis_{key}", help_text, value=stats[key])
        findings = CounterMetricFamily(
            "mcptool_analysis_findings", "Findings published", labels=["source"]
        )
        findings.add_metric(["model"], stats["findings_model"])
        findings.add_metric(["statistics"], stats["findings_statistics"])
        yield findings
        answered = CounterMetricFamily(
            "mcptool_analysis_model_findings",
            "Model findings by the model that answered (routing: which route served)",
            labels=["model"],
        )
        for model, count in sorted(self.pipeline.findings_by_model.items()):
            answered.add_metric([model], count)
        yield answered
        yield GaugeMetricFamily(
            "mcptool_analysis_backlog", "Flagged windows waiting for the model", stats["backlog"]
        )
        yield GaugeMetricFamily(
            "mcptool_analysis_model_up",
            "1 while the model answers, 0 while it is busy, down or missing",
            0 if self.pipeline.model_down else 1,
        )
        yield from _route_metrics(self.pipeline.model)
        latency = self.pipeline.latency
        histogram = HistogramMetricFamily(
            "mcptool_analysis_model_call_seconds", "Time of an answered model call"
        )
        histogram.add_metric([], latency.cumulative(), latency.sum)
        yield histogram


def _route_metrics(model: object) -> Iterator[Metric]:
    """Per route of a router (``[[analysis.routes]]``): health, breaker, answers, failures."""
    from mcptool.analysis.routing import RoutedModel

    if not isinstance(model, RoutedModel):
        return
    labels = ["model", "endpoint"]
    healthy = GaugeMetricFamily(
        "mcptool_analysis_route_healthy",
        "1 while the route's endpoint answers with its model (or is not checked yet), 0 while"
        " a health check found it down or without the model (the route is skipped)",
        labels=labels,
    )
    breaker = GaugeMetricFamily(
        "mcptool_analysis_route_breaker_open",
        "1 while the route is skipped after failed calls (its breaker is open)",
        labels=labels,
    )
    answered = CounterMetricFamily(
        "mcptool_analysis_route_answers", "Calls the route answered", labels=labels
    )
    failed = CounterMetricFamily(
        "mcptool_analysis_route_failures",
        "Calls the route could not answer (busy, down, timed out, not pulled)",
        labels=labels,
    )
    for route in model.status():
        key = [route["model"], route["endpoint"]]
        healthy.add_metric(key, 0 if route["health"] == "unhealthy" else 1)
        breaker.add_metric(key, 1 if route["breaker"] == "open" else 0)
        answered.add_metric(key, route["answered"])
        failed.add_metric(key, route["failed"])
    yield from (healthy, breaker, answered, failed)
