"""OpenTelemetry across the fleet: one trace from a reading to its window's finding.

The API only (``opentelemetry-api``): without a configured SDK every span is a no-op,
so tracing is off by default and costs next to nothing. ``configure(endpoint)`` (what
``--otlp URL`` does) installs the SDK with an OTLP/HTTP exporter; tests install an
in-memory exporter instead.

The context travels in W3C ``traceparent`` headers: a poll message may carry one (a
gateway that traces its polls); the hub's ``fleet.store`` span is its child and stamps
its own ``traceparent`` on the stored reading and on the window it closes; a worker's
``fleet.window`` span continues the trace of the window's first reading and links the
others, the model call is its child, and the finding is published with the worker's
``traceparent`` and carries the trace id in its record (``trace_id``).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, Tracer

__all__ = ["configure", "context_of", "inject", "link_of", "trace_id", "tracer"]

_NAME = "mcptool.fleet"


def tracer() -> Tracer:
    return trace.get_tracer(_NAME)


def context_of(headers: Mapping[str, str] | None) -> Context | None:
    """The trace context a message carries (None: it carries none)."""
    if not headers or "traceparent" not in headers:
        return None
    context = propagate.extract(dict(headers))
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def link_of(headers: Mapping[str, str] | None) -> Link | None:
    context = context_of(headers)
    if context is None:
        return None
    return Link(trace.get_current_span(context).get_span_context())


def inject(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus the current span's ``traceparent`` (unchanged when not tracing)."""
    propagate.inject(headers)
    return headers


def trace_id(span_context: SpanContext | None = None) -> str | None:
    """The current (or given) trace id as 32 hex digits, None when not tracing."""
    context = span_context or trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def configure(endpoint: str, service: str) -> None:
    """Export spans over OTLP/HTTP to ``endpoint`` (e.g. http://127.0.0.1:4318)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    url = endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    trace.set_tracer_provider(provider)
