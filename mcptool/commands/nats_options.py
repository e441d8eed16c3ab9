"""``--nats URL[,URL...]``: the servers of a NATS cluster, checked before anything connects."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import click

from mcptool.commands.options import Url

__all__ = [
    "NatsUrls",
    "flush_traces",
    "metrics_address",
    "metrics_option",
    "otlp_option",
    "require_fleet",
    "serve_metrics",
    "start_tracing",
]


class NatsUrls(click.ParamType):
    """A comma-separated list of ``nats://HOST:PORT`` (or ``tls://``) URLs."""

    name = "URL[,URL...]"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, list):
            return value
        urls = [part.strip() for part in str(value).split(",") if part.strip()]
        if not urls:
            self.fail("give at least one URL, e.g. nats://127.0.0.1:4222", param, ctx)
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("nats", "tls"):
                self.fail(f"{url!r}: use nats://HOST:PORT (or tls://HOST:PORT)", param, ctx)
            try:
                port = parts.port
            except ValueError:
                port = -1
            if not parts.hostname or port is None or not 1 <= port <= 65535:
                self.fail(f"{url!r}: name a host and a port 1..65535, e.g. nats://127.0.0.1:4222",
                          param, ctx)  # fmt: skip
        return urls


def otlp_option(function: Any) -> Any:
    return click.option(
        "--otlp",
        "otlp_url",
        type=Url("http", "https", path=True),
        help="Export OpenTelemetry traces over OTLP/HTTP to this collector "
        "(e.g. http://127.0.0.1:4318). Off by default.",
    )(function)


def start_tracing(otlp_url: str | None, service: str) -> None:
    """Install the OTLP exporter that ``--otlp`` asks for (one line if it is missing), and
    end the log lines written inside a recorded span with its ` trace_id=` as the
    gateway's do (call it after logging is set up: it stamps the handlers there are)."""
    if otlp_url is None:
        return
    try:
        import opentelemetry.exporter.otlp.proto.http
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        from mcptool.errors import UsageError

        raise UsageError(
            "--otlp needs the OpenTelemetry SDK: pip install 'mcptool[tracing]'"
        ) from None
    from mcptool.tracing import configure, log_trace_ids

    configure(otlp_url, service)
    log_trace_ids(end_lines=True)


def metrics_option(function: Any) -> Any:
    return click.option(
        "--metrics",
        "metrics_listen",
        help="Serve Prometheus metrics on HOST:PORT/metrics (e.g. 127.0.0.1:9464).",
    )(function)


def metrics_address(listen: str | None) -> tuple[str, int] | None:
    """``--metrics HOST:PORT``, checked before anything connects (None: not asked)."""
    if listen is None:
        return None
    from mcptool.commands.hub import parse_listen
    from mcptool.errors import UsageError

    try:
        return parse_listen(listen)
    except UsageError as exc:  # the same rules as --listen, named for this option
        raise UsageError(str(exc).replace("--listen", "--metrics", 1)) from None


def serve_metrics(metrics: Any, address: tuple[str, int] | None) -> str | None:
    """Start ``/metrics`` at ``address``; its URL, or None when not asked."""
    if address is None:
        return None
    from mcptool.errors import UsageError

    host, port = address
    try:
        port = metrics.serve(host, port)
    except OSError as exc:
        raise UsageError(f"--metrics {host}:{port}: cannot listen there: {exc.strerror}") from None
    return f"http://{host}:{port}/metrics"


def flush_traces() -> None:
    """Hand the last spans to the exporter before the process ends (no-op untraced)."""
    from opentelemetry import trace

    shutdown = getattr(trace.get_tracer_provider(), "shutdown", None)
    if shutdown is not None:
        shutdown()


def require_fleet(option: str) -> None:
    """One line naming the extra to install when nats-py is missing."""
    try:
        import nats  # noqa: F401
    except ImportError:
        from mcptool.errors import UsageError

        raise UsageError(f"{option} needs the NATS client: pip install 'mcptool[fleet]'") from None
