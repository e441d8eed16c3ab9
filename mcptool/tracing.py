"""OpenTelemetry for mcptool: one trace from a gateway's poll to its window's finding.

The API only (``opentelemetry-api``): without a configured SDK every span is a no-op,
so tracing is off by default and costs next to nothing. ``configure(endpoint, service)``
installs the SDK for the whole process with an OTLP/HTTP exporter (the hub's and the
worker's ``--otlp URL``); ``provider(...)`` makes one that is not global (a gateway's
``[tracing]``, so that gateways in one process keep apart); tests install an in-memory
exporter instead.

The context travels as W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``): a
field of a poll message, a header of a NATS message. Its trace id, 32 hex digits, has
the form of the MCP envelope's ``traceId``. The W3C propagator is used by name, not the
process's global one: the field is called ``traceparent`` whatever else a process
propagates.

Logs and metrics carry the trace too: ``TraceIds`` stamps every record with the current
span's trace id (``trace_id``, and ``trace`` for the end of a format line), and
``exemplar()`` gives it as the labels of a Prometheus exemplar (OpenMetrics shows it
beside the sample). Both name recorded (sampled) traces only: another id leads nowhere.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = [
    "TraceIds",
    "configure",
    "context_of",
    "exemplar",
    "inject",
    "link_of",
    "log_trace_ids",
    "provider",
    "recorded_trace_id",
    "trace_id",
    "traceparent",
    "traceparent_in",
    "tracer",
]

_W3C = TraceContextTextMapPropagator()
_FIELD = b'"traceparent":"'
_LENGTH = 55  # version 00: 2 + 1 + 32 + 1 + 16 + 1 + 2


def tracer(name: str) -> Tracer:
    return trace.get_tracer(name)


def context_of(headers: Mapping[str, str] | None) -> Context | None:
    """The trace context a message carries (None: it carries none)."""
    if not headers or "traceparent" not in headers:
        return None
    context = _W3C.extract(dict(headers))
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def link_of(headers: Mapping[str, str] | None) -> Link | None:
    context = context_of(headers)
    if context is None:
        return None
    return Link(trace.get_current_span(context).get_span_context())


def inject(headers: dict[str, str], span: Span | None = None) -> dict[str, str]:
    """``headers`` plus the ``traceparent`` of ``span`` (default: the current span);
    unchanged when not tracing."""
    _W3C.inject(headers, trace.set_span_in_context(span) if span is not None else None)
    return headers


def traceparent(span: Span) -> str | None:
    """``span``'s W3C ``traceparent``; None for a span that is not traced (a no-op)."""
    return inject({}, span).get("traceparent")


def traceparent_in(message: bytes) -> str | None:
    """The ``traceparent`` field of a JSON message, found without parsing it (a JSON
    string cannot hold ``"traceparent":"`` unescaped, so the first match is a key)."""
    start = message.find(_FIELD)
    if start < 0:
        return None
    start += len(_FIELD)
    end = message.find(b'"', start)
    if end - start != _LENGTH:
        return None
    return message[start:end].decode("ascii", "replace")


def trace_id(span_context: SpanContext | None = None) -> str | None:
    """The current (or given) trace id as 32 hex digits, None when not tracing."""
    context = span_context or trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def recorded_trace_id(span_context: SpanContext | None = None) -> str | None:
    """``trace_id``, but None for a trace the sampler left out (recorded nowhere)."""
    context = span_context or trace.get_current_span().get_span_context()
    return trace_id(context) if context.trace_flags.sampled else None


def exemplar(span_context: SpanContext | None = None) -> dict[str, str] | None:
    """The current (or given) span's recorded trace as a Prometheus exemplar (``inc`` and
    ``observe`` take None: no exemplar)."""
    current = recorded_trace_id(span_context)
    return {"trace_id": current} if current else None


def provider(
    endpoint: str | None,
    service: str,
    *,
    instance: str | None = None,
    sample_ratio: float = 1.0,
) -> TracerProvider:
    """An SDK provider exporting over OTLP/HTTP to ``endpoint`` (its base URL, e.g.
    http://127.0.0.1:4318; None: the standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_ENDPOINT``, else http://localhost:4318), in batches off the
    caller's thread. A trace started here is kept with ``sample_ratio``; one continued
    from a parent keeps the parent's decision. ``shutdown()`` sends what is left."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    attributes = {"service.name": service}
    if instance is not None:
        attributes["service.instance.id"] = instance
    made = SdkTracerProvider(
        resource=Resource.create(attributes),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    url = endpoint.rstrip("/") + "/v1/traces" if endpoint is not None else None
    made.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    return made


def configure(endpoint: str | None, service: str, *, sample_ratio: float = 1.0) -> None:
    """Export this process's spans over OTLP/HTTP to ``endpoint`` (see ``provider``)."""
    trace.set_tracer_provider(provider(endpoint, service, sample_ratio=sample_ratio))


class TraceIds(logging.Filter):
    """Stamps each log record with the trace of the span current when it was written:
    ``trace_id`` (32 hex digits; "" outside a span of a recorded trace, whose id would
    lead nowhere) and ``trace`` (``" trace_id=<id>"`` or "", to end a format line with).
    Never filters a record out."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = recorded_trace_id()
        record.trace_id = current or ""
        record.trace = f" trace_id={current}" if current else ""
        return True


class _TraceEnding(logging.Formatter):
    """A formatter's line with ``%(trace)s`` after it, as if its format ended with it (a
    traceback stays below the line). Wraps the formatter a command already set up: its
    format string is not public."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        ending = getattr(record, "trace", "")
        if not ending:
            return text
        line, newline, rest = text.partition("\n")
        return line + ending + newline + rest


def log_trace_ids(*, end_lines: bool = False) -> None:
    """Every handler of the root logger stamps its records (``TraceIds``): a format may
    then end with ``%(trace)s``. A handler's filter sees the records of every logger.
    ``end_lines``: the handlers' lines end with it whatever their format (the hub's and
    the worker's ``--otlp``, set up after their logging)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, TraceIds) for f in handler.filters):
            handler.addFilter(TraceIds())
        if end_lines and not isinstance(handler.formatter, _TraceEnding):
            handler.setFormatter(_TraceEnding(handler.formatter or logging.Formatter()))
