"""Route REQUEST frames by ``action`` to handlers; always answer with the response envelope.

Every answer carries the request's ``traceId`` (``ResponseEnvelope.trace_id``), so that a
client with several requests in flight can tell the answers apart; a request too broken
to read one is answered with ``"traceId": null``.
"""

from __future__ import annotations

import asyncio
import inspect
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
from mcptool.frame.envelope import read_trace_id

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
            trace_id = read_trace_id(payload, "request")
            return _encode(ResponseEnvelope(BAD_REQUEST, f"bad request: {exc}", trace_id=trace_id))
        return _encode(await self.answer(request))

    def too_large(self, payload: bytes, size: int, limit: int) -> bytes:
        """The 500 answer for a response that would not fit in one frame."""
        message = f"response of {size} bytes exceeds the frame limit of {limit} bytes"
        trace_id = read_trace_id(payload, "request")
        return _encode(ResponseEnvelope(INTERNAL_ERROR, message, trace_id=trace_id))

    async def answer(self, request: RequestEnvelope) -> ResponseEnvelope:
        """The handler's answer to ``request``, carrying its traceId."""
        trace_id = request.trace_id
        handler = self.handlers.get(request.action)
        if handler is None:
            known = ", ".join(sorted(self.handlers)) or "none"
            return ResponseEnvelope(
                NOT_FOUND,
                f"unknown action {request.action!r} (this hub knows: {known})",
                trace_id=trace_id,
            )
        try:
            result = handler(request.data, request)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self.timeout)
        except HandlerError as exc:
            return ResponseEnvelope(exc.code, exc.message, exc.data, trace_id=trace_id)
        except TimeoutError:
            return ResponseEnvelope(
                TIMEOUT,
                f"handler for {request.action!r} took longer than {self.timeout:g} s",
                trace_id=trace_id,
            )
        except Exception as exc:
            log.exception("handler for %r failed", request.action)
            return ResponseEnvelope(
                INTERNAL_ERROR,
                f"handler for {request.action!r} failed: {type(exc).__name__}",
                trace_id=trace_id,
            )
        return ResponseEnvelope(OK, "OK", result, trace_id=trace_id)


def _encode(response: ResponseEnvelope) -> bytes:
    try:
        return response.to_json()
    except EnvelopeError as exc:
        # Only ``data`` can fail to serialise; name what the json module objected to.
        reason = exc.__cause__ or exc
        failed = ResponseEnvelope(
            INTERNAL_ERROR,
            f"handler returned data that is not JSON: {reason}",
            timestamp=response.timestamp,
            trace_id=response.trace_id,
        )
        return failed.to_json()
