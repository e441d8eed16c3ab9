"""The JSON request/response envelope: shape, validation, and errors that name the field."""

from __future__ import annotations

import json

import pytest

from mcptool.frame import (
    EnvelopeError,
    RequestEnvelope,
    ResponseEnvelope,
    parse_request,
    parse_response,
)


def test_a_request_serialises_to_the_documented_shape() -> None:
    env = RequestEnvelope("read", {"unit": 1}, "gw", "t-1", 5)
    assert json.loads(env.to_json()) == {
        "header": {"traceId": "t-1", "service": "gw", "timestamp": 5},
        "payload": {"action": "read", "data": {"unit": 1}},
    }
    assert parse_request(env.to_json()) == env


def test_a_response_serialises_to_the_documented_shape() -> None:
    env = ResponseEnvelope(200, "OK", [1, 2], 9)
    assert json.loads(env.to_json()) == {
        "code": 200,
        "message": "OK",
        "data": [1, 2],
        "timestamp": 9,
    }
    assert parse_response(env.to_json()) == env
    assert env.ok and not ResponseEnvelope(404, "no").ok


def test_requests_get_a_fresh_trace_id_and_a_timestamp_in_milliseconds() -> None:
    a, b = RequestEnvelope("x"), RequestEnvelope("x")
    assert a.trace_id != b.trace_id
    assert a.timestamp > 1_600_000_000_000


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "request envelope: invalid JSON"),
        (b"\xff", "request envelope: payload is not UTF-8"),
        (b"[]", "expected a JSON object, got list"),
        (b'{"payload": {"action": "a"}}', "request.header: missing"),
        (
            b'{"header": {"service": "s", "timestamp": 1}, "payload": {"action": "a"}}',
            "request.header.traceId: missing",
        ),
        (
            b'{"header": {"traceId": "", "service": "s", "timestamp": 1},'
            b' "payload": {"action": "a"}}',
            "request.header.traceId: must not be empty",
        ),
        (
            b'{"header": {"traceId": "t", "service": "s", "timestamp": "now"},'
            b' "payload": {"action": "a"}}',
            "request.header.timestamp: expected int, got str",
        ),
        (
            b'{"header": {"traceId": "t", "service": "s", "timestamp": 1},'
            b' "payload": {"action": 3}}',
            "request.payload.action: expected str, got int",
        ),
    ],
)
def test_a_bad_request_names_the_field(payload: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError) as raised:
        parse_request(payload)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"message": "", "timestamp": 1}', "response.code: missing"),
        (b'{"code": true, "message": "", "timestamp": 1}', "response.code: expected int"),
        (b'{"code": 42, "message": "", "timestamp": 1}', "not a status code"),
        (b'{"code": 200, "message": "", "timestamp": -1}', "response.timestamp: must be >= 0"),
    ],
)
def test_a_bad_response_names_the_field(payload: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError) as raised:
        parse_response(payload)
    assert message in str(raised.value)


def test_data_that_is_not_json_cannot_be_sent() -> None:
    with pytest.raises(EnvelopeError, match="not JSON-serialisable"):
        RequestEnvelope("a", {1, 2}).to_json()
