"""The JSON envelope of REQUEST and RESPONSE frames, with validation that names the field.

Request:  {"header": {"traceId", "service", "timestamp"}, "payload": {"action", "data"}}
Response: {"code", "message", "data", "timestamp", "traceId"}   (code 200 = success)

A response repeats its request's ``traceId`` (``null`` when the request was too broken to
read one), so a client with several requests in flight can match the answers.

``timestamp`` is Unix time in milliseconds (an integer). Validation is written out by
hand rather than with jsonschema: it runs once per RPC on the link's hot path, and its
messages name the exact field (``header.traceId: missing``). The JSON text itself is
read and written within the bounds of :mod:`mcptool.frame.jsontext` (nesting depth,
number size), so any payload is either an envelope or an ``EnvelopeError``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from mcptool.frame.errors import EnvelopeError
from mcptool.frame.jsontext import dump_json, load_json

# Response codes the router uses; they follow HTTP where HTTP has a word for it.
OK = 200
BAD_REQUEST = 400
NOT_FOUND = 404
INTERNAL_ERROR = 500
TIMEOUT = 504

_MISSING = object()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_trace_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class RequestEnvelope:
    action: str
    data: Any = None
    service: str = "mcptool"
    trace_id: str = field(default_factory=new_trace_id)
    timestamp: int = field(default_factory=now_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "header": {
                "traceId": self.trace_id,
                "service": self.service,
                "timestamp": self.timestamp,
            },
            "payload": {"action": self.action, "data": self.data},
        }

    def to_json(self) -> bytes:
        return _dumps(self.to_dict(), "request")


@dataclass(frozen=True, slots=True)
class ResponseEnvelope:
    code: int
    message: str = "OK"
    data: Any = None
    timestamp: int = field(default_factory=now_ms)
    trace_id: str | None = None  # the request's; None only when it could not be read

    @property
    def ok(self) -> bool:
        return self.code == OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "data": self.data,
            "timestamp": self.timestamp,
            "traceId": self.trace_id,
        }

    def to_json(self) -> bytes:
        return _dumps(self.to_dict(), "response")


def _dumps(obj: dict[str, Any], what: str) -> bytes:
    # the error's __cause__ says what json objected to (link/router.py names it)
    return dump_json(obj, what)


def _load_object(payload: bytes, what: str) -> dict[str, Any]:
    obj = load_json(payload, what)
    if not isinstance(obj, dict):
        raise EnvelopeError(f"{what} envelope: expected a JSON object, got {type(obj).__name__}")
    return obj


def _get(obj: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        raise EnvelopeError(f"{path}: missing")
    # bool is an int in Python but never a valid number here
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        expected = " or ".join(k.__name__ for k in _as_tuple(kind))
        raise EnvelopeError(f"{path}: expected {expected}, got {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _timestamp(obj: dict[str, Any], path: str) -> int:
    value = _get(obj, "timestamp", path, int)
    if value < 0:
        raise EnvelopeError(f"{path}: must be >= 0 (Unix time in milliseconds)")
    return int(value)


def parse_request(payload: bytes) -> RequestEnvelope:
    obj = _load_object(payload, "request")
    header = _get(obj, "header", "request.header", dict)
    body = _get(obj, "payload", "request.payload", dict)
    trace_id = _get(header, "traceId", "request.header.traceId", str)
    if not trace_id:
        raise EnvelopeError("request.header.traceId: must not be empty")
    service = _get(header, "service", "request.header.service", str)
    timestamp = _timestamp(header, "request.header.timestamp")
    action = _get(body, "action", "request.payload.action", str)
    if not action:
        raise EnvelopeError("request.payload.action: must not be empty")
    data = body.get("data")
    return RequestEnvelope(action, data, service, trace_id, timestamp)


def parse_response(payload: bytes) -> ResponseEnvelope:
    obj = _load_object(payload, "response")
    code = _get(obj, "code", "response.code", int)
    if not 100 <= code <= 599:
        raise EnvelopeError(f"response.code: {code} is not a status code (100..599)")
    message = _get(obj, "message", "response.message", str)
    timestamp = _timestamp(obj, "response.timestamp")
    # Absent reads as null: responses encoded before the field was part of the codec.
    trace_id = obj.get("traceId")
    if trace_id is not None:
        if not isinstance(trace_id, str):
            raise EnvelopeError(
                f"response.traceId: expected str or null, got {type(trace_id).__name__}"
            )
        if not trace_id:
            raise EnvelopeError("response.traceId: must not be empty (null when unknown)")
    return ResponseEnvelope(code, message, obj.get("data"), timestamp, trace_id)


def read_trace_id(payload: bytes, kind: Literal["request", "response"]) -> str | None:
    """The traceId of an envelope that failed validation, if one can be read at all.

    A server answers even a broken REQUEST with the id it carried, and a client fails the
    right pending call when a RESPONSE is broken. Only a non-empty string counts.
    """
    try:
        obj = load_json(payload, kind)
        trace_id = obj["header"]["traceId"] if kind == "request" else obj["traceId"]
    except (EnvelopeError, KeyError, TypeError):
        return None
    return trace_id if isinstance(trace_id, str) and trace_id else None


def parse_event(payload: bytes) -> dict[str, Any]:
    return _load_object(payload, "event")
