"""OpenTelemetry across the fleet: one trace from a reading to its window's finding.

The helpers are ``mcptool.tracing``'s (the gateway shares them); this module names the
fleet's tracer and keeps ``from mcptool.fleet import tracing`` working.

The context travels in W3C ``traceparent`` headers: a poll message may carry one (a
gateway with ``[tracing]`` puts its ``gateway.link`` span's there); the hub's
``fleet.store`` span is its child and stamps its own ``traceparent`` on the stored
reading and on the window it closes; a worker's ``fleet.window`` span continues the
trace of the window's first reading and links the others, the model call is its child,
and the finding is published with the worker's ``traceparent`` and carries the trace id
in its record (``trace_id``).
"""

from __future__ import annotations

from opentelemetry.trace import Tracer

from mcptool.tracing import configure, context_of, exemplar, inject, link_of, trace_id
from mcptool.tracing import tracer as named_tracer

__all__ = ["configure", "context_of", "exemplar", "inject", "link_of", "trace_id", "tracer"]

_NAME = "mcptool.fleet"


def tracer() -> Tracer:
    return named_tracer(_NAME)
