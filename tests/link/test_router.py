"""The router always answers with the response envelope, echoing the traceId."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mcptool.frame import RequestEnvelope, parse_response
from mcptool.link import HandlerError, Router


async def call(router: Router, payload: bytes) -> tuple[Any, dict[str, Any]]:
    raw = await router.dispatch(payload)
    return parse_response(raw), json.loads(raw)


async def test_a_handler_result_is_a_200_with_the_requests_trace_id() -> None:
    router = Router({"echo": lambda data, request: data})
    request = RequestEnvelope("echo", {"x": 1})
    response, raw = await call(router, request.to_json())
    assert (response.code, response.data) == (200, {"x": 1})
    assert raw["traceId"] == request.trace_id


async def test_async_handlers_are_awaited() -> None:
    router = Router()

    @router.route("later")
    async def later(data: Any, request: RequestEnvelope) -> str:
        await asyncio.sleep(0)
        return "done"

    response, _ = await call(router, RequestEnvelope("later").to_json())
    assert response.data == "done"


async def test_an_unknown_action_is_a_404_naming_the_known_ones() -> None:
    router = Router({"a": lambda d, r: 1, "b": lambda d, r: 2})
    response, _ = await call(router, RequestEnvelope("zz").to_json())
    assert response.code == 404
    assert "unknown action 'zz'" in response.message and "a, b" in response.message


async def test_a_bad_envelope_is_a_400_that_names_the_field_and_keeps_the_trace_id() -> None:
    payload = json.dumps({"header": {"traceId": "t-1"}, "payload": {"action": "a"}}).encode()
    response, raw = await call(Router(), payload)
    assert response.code == 400
    assert "request.header.service" in response.message
    assert raw["traceId"] == "t-1"


async def test_json_that_is_not_even_an_object_is_still_answered() -> None:
    response, raw = await call(Router(), b"[1, 2")
    assert response.code == 400
    assert raw["traceId"] is None


async def test_a_failing_handler_is_a_500_without_internals() -> None:
    def broken(data: Any, request: RequestEnvelope) -> None:
        raise KeyError("secret internals")

    response, _ = await call(Router({"x": broken}), RequestEnvelope("x").to_json())
    assert response.code == 500
    assert response.message == "handler for 'x' failed: KeyError"


async def test_a_handler_error_chooses_its_code() -> None:
    def conflict(data: Any, request: RequestEnvelope) -> None:
        raise HandlerError(409, "valve already open")

    response, _ = await call(Router({"x": conflict}), RequestEnvelope("x").to_json())
    assert (response.code, response.message) == (409, "valve already open")


async def test_a_slow_handler_is_a_504() -> None:
    async def slow(data: Any, request: RequestEnvelope) -> None:
        await asyncio.Event().wait()

    router = Router({"x": slow}, timeout=0.01)
    response, _ = await call(router, RequestEnvelope("x").to_json())
    assert response.code == 504


async def test_a_result_that_is_not_json_is_a_500() -> None:
    response, _ = await call(Router({"x": lambda d, r: object()}), RequestEnvelope("x").to_json())
    assert response.code == 500
    assert "not JSON" in response.message
