"""The JSON request/response envelope: shape, validation, and errors that name the field."""

from __future__ import annotations

import json
from typing import Literal

import pytest

from mcptool.frame import (
    EnvelopeError,
    RequestEnvelope,
    ResponseEnvelope,
    parse_request,
    parse_response,
)
from mcptool.frame.envelope import read_trace_id


def test_a_request_serialises_to_the_documented_shape() -> None:
    env = RequestEnvelope("read", {"unit": 1}, "gw", "t-1", 5)
    assert json.loads(env.to_json()) == {
        "header": {"traceId": "t-1", "service": "gw", "timestamp": 5},
        "payload": {"action": "read", "data": {"unit": 1}},
    }
    assert parse_request(env.to_json()) == env


def test_a_response_serialises_to_the_documented_shape_with_its_trace_id_last() -> None:
    env = ResponseEnvelope(200, "OK", [1, 2], 9, "t-1")
    assert env.to_json() == (
        b'{"code":200,"message":"OK","data":[1,2],"timestamp":9,"traceId":"t-1"}'
    )
    assert parse_response(env.to_json()) == env
    assert env.ok and not ResponseEnvelope(404, "no").ok


def test_a_response_without_a_known_trace_id_carries_null() -> None:
    env = ResponseEnvelope(400, "bad request", timestamp=9)
    assert env.trace_id is None
    assert (
        env.to_json()
        == b'{"code":400,"message":"bad request","data":null,"timestamp":9,"traceId":null}'
    )
    assert parse_response(env.to_json()) == env


def test_a_response_that_omits_the_trace_id_reads_as_null() -> None:
    # what ResponseEnvelope.to_json() wrote before the field was part of the codec
    legacy = b'{"code":200,"message":"OK","data":1,"timestamp":9}'
    assert parse_response(legacy) == ResponseEnvelope(200, "OK", 1, 9, None)


def test_a_request_round_trips_its_trace_id() -> None:
    env = RequestEnvelope("read", None, "gw", "t-\u00e9", 5)
    assert parse_request(env.to_json()).trace_id == "t-\u00e9"


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
            b'{"header": {"traceId": 7, "service": "s", "timestamp": 1},'
            b' "payload": {"action": "a"}}',
            "request.header.traceId: expected str, got int",
        ),
        (
            b'{"header": {"traceId": null, "service": "s", "timestamp": 1},'
            b' "payload": {"action": "a"}}',
            "request.header.traceId: expected str, got NoneType",
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
        (
            b'{"code": 200, "message": "", "timestamp": 1, "traceId": 7}',
            "response.traceId: expected str or null, got int",
        ),
        (
            b'{"code": 200, "message": "", "timestamp": 1, "traceId": false}',
            "response.traceId: expected str or null, got bool",
        ),
        (
            b'{"code": 200, "message": "", "timestamp": 1, "traceId": ["t"]}',
            "response.traceId: expected str or null, got list",
        ),
        (
            b'{"code": 200, "message": "", "timestamp": 1, "traceId": ""}',
            "response.traceId: must not be empty",
        ),
    ],
)
def test_a_bad_response_names_the_field(payload: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError) as raised:
        parse_response(payload)
    assert message in str(raised.value)


def test_data_that_is_not_json_cannot_be_sent() -> None:
    with pytest.raises(EnvelopeError, match="not JSON-serialisable"):
        RequestEnvelope("a", {1, 2}).to_json()


@pytest.mark.parametrize(
    ("payload", "kind", "trace_id"),
    [
        (b'{"header": {"traceId": "t-1"}}', "request", "t-1"),
        (b'{"header": {"traceId": ""}}', "request", None),
        (b'{"header": {"traceId": 7}}', "request", None),
        (b'{"header": "t-1"}', "request", None),
        (b'{"traceId": "t-1"}', "request", None),
        (b'{"code": "x", "traceId": "t-1"}', "response", "t-1"),
        (b'{"traceId": null}', "response", None),
        (b"[1, 2]", "response", None),
        (b"\xff", "response", None),
        (b"not json", "request", None),
    ],
)
def test_the_trace_id_of_a_broken_envelope_is_read_when_it_is_a_non_empty_string(
    payload: bytes, kind: Literal["request", "response"], trace_id: str | None
) -> None:
    assert read_trace_id(payload, kind) == trace_id
