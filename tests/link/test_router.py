"""The router always answers with the response envelope, echoing the traceId."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from mcptool.frame import RequestEnvelope, parse_response
from mcptool.link import HandlerError, Router

VECTORS = {
    vector["name"]: vector
    for vector in json.loads(
        (Path(__file__).resolve().parents[2] / "fixtures/frames/vectors.json").read_text()
    )["vectors"]
}


def golden_payload(name: str) -> bytes:
    return bytes.fromhex(VECTORS[name]["frames"][0]["payload_hex"])


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Envelope timestamps read 1700000000001 ms, the golden vectors' time."""
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_001_000_000)


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
    assert response.trace_id == raw["traceId"] == "t-1"


async def test_json_that_is_not_even_an_object_is_still_answered() -> None:
    response, raw = await call(Router(), b"[1, 2")
    assert response.code == 400
    assert response.trace_id is raw["traceId"] is None


@pytest.mark.parametrize("trace_id", ["", 7, None, ["t-1"]])
async def test_a_request_whose_trace_id_is_unusable_is_answered_with_null(trace_id: Any) -> None:
    payload = json.dumps({"header": {"traceId": trace_id}, "payload": {"action": "a"}}).encode()
    response, raw = await call(Router(), payload)
    assert response.code == 400
    assert "request.header.traceId" in response.message
    assert "traceId" in raw and raw["traceId"] is None


@pytest.mark.usefixtures("frozen_clock")
async def test_the_answer_to_the_golden_request_is_the_golden_response_byte_for_byte() -> None:
    router = Router({"read": lambda data, request: {"value": 42}})
    assert await router.dispatch(golden_payload("request")) == golden_payload("response")


@pytest.mark.usefixtures("frozen_clock")
async def test_an_empty_request_is_the_golden_untraced_response_byte_for_byte() -> None:
    assert await Router().dispatch(b"") == golden_payload("response-untraced")


async def test_every_answer_of_answer_carries_the_requests_trace_id() -> None:
    async def slow(data: Any, request: RequestEnvelope) -> None:
        await asyncio.Event().wait()

    def conflict(data: Any, request: RequestEnvelope) -> None:
        raise HandlerError(409, "valve already open")

    def broken(data: Any, request: RequestEnvelope) -> None:
        raise ValueError("internals")

    router = Router(
        {"ok": lambda d, r: 1, "slow": slow, "conflict": conflict, "broken": broken},
        timeout=0.01,
    )
    codes = {}
    for action in ("ok", "slow", "conflict", "broken", "unknown"):
        request = RequestEnvelope(action)
        response = await router.answer(request)
        assert response.trace_id == request.trace_id
        codes[action] = response.code
    assert codes == {"ok": 200, "slow": 504, "conflict": 409, "broken": 500, "unknown": 404}


def test_a_response_too_large_for_a_frame_keeps_the_trace_id() -> None:
    request = RequestEnvelope("huge", trace_id="t-9")
    response = parse_response(Router().too_large(request.to_json(), 70_000, 16_384))
    assert (response.code, response.trace_id) == (500, "t-9")
    assert response.message == "response of 70000 bytes exceeds the frame limit of 16384 bytes"


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


async def test_a_result_that_is_not_json_is_a_500_naming_what_json_objected_to() -> None:
    request = RequestEnvelope("x")
    response, _ = await call(Router({"x": lambda d, r: {1, 2}}), request.to_json())
    assert (response.code, response.trace_id) == (500, request.trace_id)
    assert response.message == (
        "handler returned data that is not JSON: Object of type set is not JSON serializable"
    )
