"""Ollama's wire format on the server side: what every Ollama-speaking server writes.

From FIELD-NOTES: NDJSON chunks with no blank lines; ``stream: false`` answers one
object; errors are ``{"error": ...}`` with Ollama's statuses and texts; an error after
the first chunk is a last ``{"error"}`` line under status 200 (a 500 for
``stream: false``); keep_alive is seconds or a Go duration, negative meaning forever;
timestamps are Go's RFC3339Nano; durations are nanoseconds and zero ones are omitted.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

from mcptool.serving.http import Request, Response

BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
DEFAULT_KEEP_ALIVE = 300.0
JSON = "application/json; charset=utf-8"
NDJSON = "application/x-ndjson"
FOREVER_STAMP = "2318-01-01T00:00:00Z"
"""What Ollama shows as ``expires_at`` for a model kept loaded forever."""


class ApiError(Exception):
    """An answer ``{"error": message}`` under ``status``, before any chunk was sent."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class StreamError(Exception):
    """Raised inside a chunk stream to end it with an ``{"error": ...}`` line."""


def dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def error(status: int, message: str) -> Response:
    return Response(status, dump({"error": message}))


def rfc3339(ns: int | None = None) -> str:
    """Go's RFC3339Nano in UTC: what Ollama writes in ``created_at`` and ``modified_at``."""
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    fraction = f"{frac:09d}".rstrip("0")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def keep_alive_seconds(value: Any) -> float:
    """Ollama's keep_alive: seconds as a number or a Go duration; negative means forever."""
    if value is None or value == "":
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, bool):
        raise ApiError(400, f"json: cannot unmarshal bool into Go value of type {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        try:
            seconds = float(body) * sign
        except ValueError:
            parts = _DURATION.findall(body)
            if not parts or "".join(n + u for n, u in parts) != body:
                raise ApiError(400, f'time: invalid duration "{text}"') from None
            seconds = sign * sum(float(n) * _UNIT[u] for n, u in parts)
    return math.inf if seconds < 0 else seconds


def read_body(request: Request) -> dict[str, Any]:
    """The JSON object of a request, or the 400 Ollama gives for anything else."""
    if not request.body.strip():
        raise ApiError(400, "missing request body")
    try:
        body = json.loads(request.body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"invalid character in request body: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "json: cannot unmarshal into Go value of type api.Request")
    return body


def full_name(name: str) -> str:
    """Ollama's model names: one without a tag means ``:latest``."""
    name = name.strip()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def model_name(body: Mapping[str, Any]) -> str:
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "model is required")
    return name


def check_format(fmt: Any) -> None:
    if fmt not in (None, "", "json") and not isinstance(fmt, dict):
        raise ApiError(400, 'invalid format: expected "json" or a valid JSON schema')


def options_of(body: Mapping[str, Any]) -> dict[str, Any]:
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "json: cannot unmarshal options into Go value of type map")
    return options


def messages_of(body: Mapping[str, Any]) -> list[Any]:
    messages = body.get("messages") or []
    if not isinstance(messages, list):
        raise ApiError(400, "json: cannot unmarshal messages into Go value of type []api.Message")
    return messages


def tools_of(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A chat's ``tools``: each an object with a ``function`` that has a name."""
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(
        isinstance(t, dict)
        and isinstance(t.get("function"), dict)
        and isinstance(t["function"].get("name"), str)
        for t in tools
    ):
        raise ApiError(400, "json: cannot unmarshal tools into Go value of type []api.Tool")
    return tools


def piece(
    kind: str,
    model: str,
    text: str,
    *,
    done: bool = False,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One chunk of a generate (``response``) or chat (``message``) answer."""
    chunk: dict[str, Any] = {"model": model, "created_at": rfc3339()}
    if kind == "generate":
        chunk["response"] = text
    else:
        chunk["message"] = {"role": "assistant", "content": text}
        if tool_calls:
            chunk["message"]["tool_calls"] = tool_calls
    chunk["done"] = done
    return chunk


def final(
    kind: str, model: str, reason: str, metrics: Mapping[str, int], context: list[int] | None
) -> dict[str, Any]:
    """The last chunk: ``done_reason``, nanosecond figures (zero ones omitted), context."""
    chunk = piece(kind, model, "", done=True)
    chunk["done_reason"] = reason
    if kind == "generate" and context is not None:
        chunk["context"] = context
    chunk.update((k, v) for k, v in metrics.items() if v)
    return chunk


async def ndjson(
    chunks: AsyncGenerator[dict[str, Any], None],
    on_close: Callable[[], None] = lambda: None,
    *,
    prefix: bytes = b"",
) -> AsyncIterator[bytes]:
    """A chunk stream as NDJSON lines, each after ``prefix``; a :class:`StreamError`
    becomes an error line."""
    try:
        async for chunk in chunks:
            yield prefix + dump(chunk) + b"\n"
    except StreamError as exc:
        yield dump({"error": str(exc)}) + b"\n"
    finally:
        on_close()
        await chunks.aclose()


async def collect(
    kind: str,
    chunks: AsyncGenerator[dict[str, Any], None],
    on_close: Callable[[], None] = lambda: None,
) -> Response:
    """A chunk stream as one object (``stream: false``); a :class:`StreamError`, a 500."""
    text: list[str] = []
    calls: list[Any] = []  # a chat answer's tool calls, in the order they came
    last: dict[str, Any] = {}
    try:
        async for chunk in chunks:
            if chunk.get("done"):
                last = chunk
            elif kind == "generate":
                text.append(chunk["response"])
            else:
                text.append(chunk["message"]["content"])
                calls.extend(chunk["message"].get("tool_calls") or ())
    except StreamError as exc:
        return error(500, str(exc))
    finally:
        on_close()
        await chunks.aclose()
    if kind == "generate":
        last["response"] = "".join(text)
    else:
        last["message"] = {"role": "assistant", "content": "".join(text)}
        if calls:
            last["message"]["tool_calls"] = calls
    return Response(200, dump(last))
