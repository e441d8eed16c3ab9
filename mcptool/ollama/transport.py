"""The HTTP side of the Ollama client: where the server is, the connection pool, and
what an HTTP status or a transport failure means, as a typed :mod:`~mcptool.ollama.errors`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from mcptool.ollama.deadlines import Timeouts
from mcptool.ollama.errors import (
    ModelNotFound,
    OllamaBadRequest,
    OllamaBusy,
    OllamaError,
    OllamaHTTPError,
    OllamaTimeout,
    OllamaUnreachable,
)

DEFAULT_URL = "http://127.0.0.1:11434"


def normalize_url(url: str | None = None) -> str:
    """``OLLAMA_HOST``-style addresses (``host``, ``host:port``, ``http://host``) to a URL."""
    url = (url or os.environ.get("OLLAMA_HOST") or DEFAULT_URL).strip()
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # a server's bind-all address; connect over loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if parts.scheme == "https" else 11434)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{host}:{port}{path}"


def open_pool(
    url: str, timeouts: Timeouts, max_in_flight: int, headers: Mapping[str, str] | None
) -> httpx.AsyncClient:
    """One pooled HTTP client for one Ollama server."""
    t = timeouts
    return httpx.AsyncClient(
        base_url=url,
        # Reads are bounded by our own load/read deadlines (per chunk, not per socket
        # read); httpx bounds connect, write and the wait for a pooled connection.
        timeout=httpx.Timeout(connect=t.connect, read=None, write=t.write, pool=t.connect),
        # httpcore scans every pooled connection for every idle one on each request
        # (O(idle x all)); past a few idle connections that costs more than opening a
        # new one, so keep at most 8 alive (Ollama rarely runs more in parallel).
        limits=httpx.Limits(
            max_connections=max_in_flight + 4,
            max_keepalive_connections=min(max_in_flight + 2, 8),
            keepalive_expiry=30.0,
        ),
        headers={
            "content-type": "application/json",
            "accept": "application/x-ndjson, application/json",
            "user-agent": "mcptool-ollama",
            **(headers or {}),
        },
    )


def status_error(
    url: str, status: int, text: str, model: str | None, server: str = ""
) -> OllamaError:
    """The typed error for an HTTP status >= 400 and Ollama's ``{"error": ...}`` body;
    ``server`` is the response's ``Server`` header (who answered)."""
    try:
        detail = str(json.loads(text).get("error", text))
    except (json.JSONDecodeError, AttributeError):
        detail = text.strip()
    if status == 404 and model and "not found" in detail:
        return ModelNotFound(model, url, server=server, detail=detail)
    if status == 503:
        return OllamaBusy(url, detail)
    if status == 400:
        return OllamaBadRequest(url, status, detail, model=model)
    return OllamaHTTPError(url, status, detail, model=model)


def transport_error(url: str, timeouts: Timeouts, exc: httpx.HTTPError) -> OllamaError:
    """The typed error for a failure below HTTP (connect, pool wait, a dropped connection)."""
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return OllamaTimeout(url, "connect", timeouts.connect or 0, retryable=True)
    if isinstance(exc, httpx.ConnectError):
        return OllamaUnreachable(url)
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return OllamaUnreachable(url, "connection closed before an answer")
    if isinstance(exc, httpx.TimeoutException):
        return OllamaTimeout(url, "read", timeouts.read or 0, retryable=False)
    return OllamaUnreachable(url, f"{type(exc).__name__}: {exc}")
