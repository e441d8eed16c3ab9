"""The gateway's spans: a poll, the spool commit that holds its readings, the uplink send.

Off unless the config has ``[tracing]``: then the ``Gateway`` makes one ``GatewayTracing``
and hands it what happens; without it no span is made and no message changes (the poll
path tests one attribute). Spans go to an SDK provider of this gateway's own when
``[tracing] endpoint`` names a collector (OTLP/HTTP, batched off the event loop), else
to the process's tracer provider (an embedding program's, a test's).

- ``gateway.poll`` (client): one poll of one device, timed as the poller measured it,
  made when its result arrives; its status is an error naming the bad points, if any.
- ``gateway.spool``, child of the poll: from the append to the commit that holds the
  record, or to the drop that loses it. Its ``traceparent`` is written into the poll
  message, so the trace goes on from the spool file, after a restart too.
- ``gateway.link`` (producer), child of the spool span it reads from the message: the
  uplink's send of the record until the hub's ACK. The message leaves with the link
  span's ``traceparent`` in place of the spool span's (as long: frame sizes do not
  change), so the hub's ``fleet.store`` is its child, and so on to the finding.

While the gateway handles a traced poll, its spool span is the current span: a log line
written then (a spool drop) carries its trace id (``mcptool.tracing.TraceIds``), as does
the exemplar of the poll's duration and count on ``/metrics`` (OpenMetrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from mcptool import tracing
from mcptool.gateway.spool import Dropped, Record, stream

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from mcptool.gateway.config import TracingConfig
    from mcptool.modbus.poller import PollResult

__all__ = ["GatewayTracing", "TracedPoll"]

_NAME = "mcptool.gateway"


class TracedPoll:
    """What a traced poll gives the rest of the poll path."""

    __slots__ = ("exemplar", "span", "traceparent")

    def __init__(self, span: Span, traceparent: str, exemplar: dict[str, str] | None) -> None:
        self.span = span  # the spool span: current while the gateway handles the poll
        self.traceparent = traceparent  # for the message
        self.exemplar = exemplar  # for /metrics: the trace id of a recorded trace


class GatewayTracing:
    """The spans of one gateway (see the module doc)."""

    def __init__(self, config: TracingConfig, node: str) -> None:
        self.node = node
        self._provider: TracerProvider | None = None
        if config.endpoint is not None:
            self._provider = tracing.provider(
                config.endpoint, config.service, instance=node, sample_ratio=config.sample_ratio
            )
            self.tracer: Tracer = self._provider.get_tracer(_NAME)
        else:
            self.tracer = tracing.tracer(_NAME)
        # spool spans waiting for their commit, by (stream, first seq)
        self._spooling: dict[tuple[str, int], Span] = {}

    def poll(self, result: PollResult, seq_first: int) -> TracedPoll | None:
        """The spans of a poll that just ended; None when the provider is a no-op. A poll
        the sampler left out still carries its (unsampled) context, without exemplar."""
        start = int(result.timestamp * 1e9)
        attributes = {
            "mcp.node": self.node,
            "mcp.device": result.device,
            "mcp.seq_first": seq_first,
            "mcp.readings": len(result.points),
        }
        poll = self.tracer.start_span(
            "gateway.poll", kind=SpanKind.CLIENT, attributes=attributes, start_time=start
        )
        if result.errors:
            bad = ", ".join(result.points[i].name for i in sorted(result.errors))
            first = result.errors[min(result.errors)]
            poll.set_status(Status(StatusCode.ERROR, f"bad points: {bad} ({first})"))
        poll.end(start + int(result.duration * 1e9))
        spool = self.tracer.start_span(
            "gateway.spool", context=trace.set_span_in_context(poll), attributes=attributes
        )
        traceparent = tracing.traceparent(spool)
        if traceparent is None:  # a no-op provider: no context to carry
            return None
        if not spool.get_span_context().trace_flags.sampled:
            # recorded nowhere, but the decision travels on: the hub records none of it
            return TracedPoll(spool, traceparent, None)
        self._spooling[(stream(result.device), seq_first)] = spool
        return TracedPoll(spool, traceparent, tracing.exemplar(spool.get_span_context()))

    @staticmethod
    @contextlib.contextmanager
    def current(traced: TracedPoll) -> Iterator[None]:
        """``traced``'s spool span as the current span (for what is logged meanwhile)."""
        with trace.use_span(traced.span, end_on_exit=False):
            yield

    def committed(self, records: list[Record]) -> None:
        """The spool committed ``records``: their spool spans end."""
        spooling = self._spooling
        if not spooling:
            return
        for record in records:
            span = spooling.pop((record.stream, record.seq_first), None)
            if span is not None:
                span.set_attribute("gateway.spool.batch", len(records))
                span.end()

    def dropped(self, dropped: Dropped) -> None:
        """Readings ``dropped`` will not be committed (or were, and are gone): the spool
        spans of the polls that held them end as errors."""
        lost = [
            key
            for key in self._spooling
            if key[0] == dropped.device and dropped.seq_first <= key[1] <= dropped.seq_last
        ]
        for key in lost:
            span = self._spooling.pop(key)
            span.set_status(Status(StatusCode.ERROR, str(dropped)))
            span.end()

    @contextlib.contextmanager
    def link(self, record: Record, hub: str) -> Iterator[Span | None]:
        """The ``gateway.link`` span of sending ``record`` to ``hub``, current inside the
        block; None (and no span) for a record that carries no trace."""
        traceparent = tracing.traceparent_in(record.payload)
        parent = tracing.context_of({"traceparent": traceparent}) if traceparent else None
        if parent is None:
            yield None
            return
        attributes = {
            "mcp.node": self.node,
            "mcp.device": record.device,
            "mcp.seq_first": record.seq_first,
            "mcp.seq_last": record.seq_last,
            "mcp.hub": hub,
        }
        with self.tracer.start_as_current_span(
            "gateway.link", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            try:
                yield span
            except asyncio.CancelledError:  # not an Exception: the SDK would leave it unset
                span.set_status(Status(StatusCode.ERROR, "the session ended before the ACK"))
                raise

    @staticmethod
    def relabel(body: bytes, span: Span) -> bytes:
        """``body`` with ``span``'s ``traceparent`` in place of the one it carries."""
        old = tracing.traceparent_in(body)
        new = tracing.traceparent(span)
        if old is None or new is None:
            return body
        return body.replace(old.encode(), new.encode(), 1)

    def close(self) -> None:
        """End what is still open (a stop before the last commit) and, with a collector
        of its own, send it the spans it has not had yet."""
        now = time.time_ns()
        for span in self._spooling.values():
            span.set_status(Status(StatusCode.ERROR, "the gateway stopped before the commit"))
            span.end(now)
        self._spooling.clear()
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None
