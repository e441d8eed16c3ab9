"""Route REQUEST frames by ``action`` to handlers; always answer with the response envelope.

The response JSON carries the request's ``traceId`` at the top level next to the
envelope's fields (``code``, ``message``, ``data``, ``timestamp``), so that a client with
several requests in flight can tell the answers apart; ``parse_response`` ignores it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mcptool.frame import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    NOT_FOUND,
    OK,
    TIMEOUT,
    EnvelopeError,
    RequestEnvelope,
    ResponseEnvelope,
    parse_request,
)

log = logging.getLogger(__name__)

Handler = Callable[[Any, RequestEnvelope], Awaitable[Any] | Any]


class HandlerError(Exception):
    """Raise from a handler to answer with a chosen code and message (e.g. 409)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class Router:
    """``action`` -> handler; ``await dispatch(payload)`` gives the RESPONSE payload."""

    def __init__(
        self, handlers: Mapping[str, Handler] | None = None, *, timeout: float | None = 30.0
    ) -> None:
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.timeout = timeout

    def add(self, action: str, handler: Handler) -> None:
        if not action:
            raise ValueError("action must not be empty")
        self.handlers[action] = handler

    def route(self, action: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def register(handler: Handler) -> Handler:
            self.add(action, handler)
            return handler

        return register

    async def dispatch(self, payload: bytes) -> bytes:
        try:
            request = parse_request(payload)
        except EnvelopeError as exc:
            return _encode(ResponseEnvelope(BAD_REQUEST, f"bad request: {exc}"), _trace_id(payload))
        response = await self.answer(request)
        return _encode(response, request.trace_id)

    def too_large(self, payload: bytes, size: int, limit: int) -> bytes:
        """The 500 answer for a response that would not fit in one frame."""
        message = f"response of {size} bytes exceeds the frame limit of {limit} bytes"
        return _encode(ResponseEnvelope(INTERNAL_ERROR, message), _trace_id(payload))

    async def answer(self, request: RequestEnvelope) -> ResponseEnvelope:
        handler = self.handlers.get(request.action)
        if handler is None:
            known = ", ".join(sorted(self.handlers)) or "none"
            return ResponseEnvelope(
                NOT_FOUND, f"unknown action {request.action!r} (this hub knows: {known})"
            )
        try:
            result = handler(request.data, request)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self.timeout)
        except HandlerError as exc:
            return ResponseEnvelope(exc.code, exc.message, exc.data)
        except TimeoutError:
            return ResponseEnvelope(
                TIMEOUT, f"handler for {request.action!r} took longer than {self.timeout:g} s"
            )
        except Exception as exc:
            log.exception("handler for %r failed", request.action)
            return ResponseEnvelope(
                INTERNAL_ERROR, f"handler for {request.action!r} failed: {type(exc).__name__}"
            )
        return ResponseEnvelope(OK, "OK", result)


def _encode(response: ResponseEnvelope, trace_id: str | None) -> bytes:
    body = response.to_dict()
    body["traceId"] = trace_id
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        failed = ResponseEnvelope(
            INTERNAL_ERROR, f"handler returned data that is not JSON: {exc}"
        ).to_dict()
        failed["traceId"] = trace_id
        return json.dumps(failed, separators=(",", ":")).encode()


def _trace_id(payload: bytes) -> str | None:
    """The traceId of a request that failed validation, if it can be read at all."""
    try:
        trace_id = json.loads(payload)["header"]["traceId"]
    except (ValueError, KeyError, TypeError):
        return None
    return trace_id if isinstance(trace_id, str) else None
