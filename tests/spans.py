"""Spans of this process's tracer provider, kept in memory for tests to read, and an
OTLP/HTTP collector for spans another process (or provider) exports.

The global provider can be set once per process, and the code under test (the hub, the
worker, a gateway without an endpoint of its own) uses it: the first test that asks sets
an SDK provider, and every test gets the one exporter on it, cleared.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["Spans", "otlp_collector", "recording"]

_EXPORTER = InMemorySpanExporter()
_INSTALLED: list[TracerProvider] = []


def recording() -> InMemorySpanExporter:
    """The exporter every finished span of this process reaches, emptied."""
    if not _INSTALLED:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        _INSTALLED.append(provider)
    _EXPORTER.clear()
    return _EXPORTER


class Spans:
    """Finished spans by name and by id, and the parent of each."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.finished: list[ReadableSpan] = list(exporter.get_finished_spans())
        self.by_id = {span.context.span_id: span for span in self.finished}

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished if span.name == name]

    def parent(self, span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None, f"{span.name} has no parent"
        assert span.parent.span_id in self.by_id, f"the parent of {span.name} was not exported"
        return self.by_id[span.parent.span_id]

    def with_traceparent(self, traceparent: str) -> ReadableSpan:
        """The span a W3C ``traceparent`` names."""
        _, trace_hex, span_hex, _ = traceparent.split("-")
        span = self.by_id[int(span_hex, 16)]
        assert span.context.trace_id == int(trace_hex, 16)
        return span


@contextmanager
def otlp_collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """An HTTP server on loopback that takes every POST as an OTLP collector would:
    its base URL, and the (path, body) of each request received so far."""
    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server API names it
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
