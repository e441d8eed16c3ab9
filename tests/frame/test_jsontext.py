"""Bounded JSON: every payload is a value or an EnvelopeError, never a crash of the parser."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mcptool.frame import (
    EnvelopeError,
    Event,
    Frame,
    FrameError,
    MessageType,
    RequestEnvelope,
    ResponseEnvelope,
    parse_message,
)
from mcptool.frame.envelope import read_trace_id
from mcptool.frame.jsontext import MAX_DEPTH, MAX_NUMBER_LENGTH, dump_json, load_json
from mcptool.link import Router
from tests.frame.strategies import hostile_json, json_values

JSON_TYPES = [MessageType.REQUEST, MessageType.RESPONSE, MessageType.EVENT]


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_nesting_up_to_the_limit_is_read_and_one_level_more_is_refused() -> None:
    assert load_json(nested(MAX_DEPTH), "event") == json.loads(nested(MAX_DEPTH))
    with pytest.raises(EnvelopeError, match=f"event envelope: JSON nested deeper than {MAX_DEPTH}"):
        load_json(nested(MAX_DEPTH + 1), "event")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"a": "[" * 5000, "b": ['{"\\' * 100], "c": "\\" * 7}).encode()
    assert load_json(text, "event")["a"] == "[" * 5000


def test_an_unclosed_nesting_is_refused_before_the_parser_recurses_into_it() -> None:
    with pytest.raises(EnvelopeError, match="nested deeper"):
        load_json(b"[" * 5000, "request")
    with pytest.raises(EnvelopeError, match="nested deeper"):
        load_json(b'{"a":' * 5000, "request")


def test_numbers_up_to_the_limit_are_read_and_one_character_more_is_refused() -> None:
    longest = b"-" + b"9" * (MAX_NUMBER_LENGTH - 1)
    assert load_json(longest, "event") == int(longest)
    assert load_json(b"0." + b"5" * (MAX_NUMBER_LENGTH - 2), "event") == 5 / 9
    with pytest.raises(
        EnvelopeError, match=f"a number of 101 characters .at most {MAX_NUMBER_LENGTH}"
    ):
        load_json(b"9" * (MAX_NUMBER_LENGTH + 1), "event")
    with pytest.raises(EnvelopeError, match="a number of 5001 characters"):
        load_json(b"[1." + b"0" * 4999 + b"]", "event")
    # Long digit strings are text, not numbers.
    assert load_json(json.dumps("9" * 5000).encode(), "event") == "9" * 5000


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"NaN", "NaN is not a JSON value"),
        (b"[-Infinity]", "-Infinity is not a JSON value"),
        (b'{"t":1e400}', "number 1e400 is out of range"),
        (b'{"t":"\xff"}', "payload is not UTF-8 (byte 6: invalid start byte)"),
        (b"\xef\xbb\xbf{}", "invalid JSON at char 0"),  # a BOM is not JSON text
    ],
)
def test_what_is_not_json_is_refused_with_its_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        load_json(payload, "event")


def test_the_writer_refuses_what_a_reader_would_refuse() -> None:
    deep: list = []
    for _ in range(MAX_DEPTH):
        deep = [deep]
    with pytest.raises(EnvelopeError, match="data nested deeper than 64"):
        RequestEnvelope("a", deep).to_json()
    very_deep: list = []
    for _ in range(5000):
        very_deep = [very_deep]
    with pytest.raises(EnvelopeError, match="data nested deeper than 64"):
        Event({"d": very_deep}).encode()
    with pytest.raises(EnvelopeError, match="an integer of 101 characters"):
        ResponseEnvelope(200, data=-(10**99)).to_json()
    assert load_json(dump_json({"n": 10**99, "s": "9" * 500}, "event"), "event")["n"] == 10**99
    with pytest.raises(EnvelopeError, match="not JSON-serialisable"):
        dump_json({"x": float("nan")}, "event")


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(JSON_TYPES), st.one_of(hostile_json(), st.binary(max_size=300)))
@example(MessageType.EVENT, b"[" * 5000)
@example(MessageType.REQUEST, b'{"header":{"traceId":' + b"1" * 5000 + b"}}")
@example(MessageType.RESPONSE, b'{"code":' + b"9" * 4301 + b"}")
def test_any_payload_is_a_message_or_a_frame_error(kind: MessageType, payload: bytes) -> None:
    with contextlib.suppress(FrameError):
        parse_message(Frame(kind, payload))
    read_trace_id(payload, "request")
    read_trace_id(payload, "response")


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_value_within_the_limits_reads_back_as_written(value: object) -> None:
    assert load_json(dump_json(value, "event"), "event") == value


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(hostile_json())
def test_the_router_answers_any_request_payload(payload: bytes) -> None:
    answer = asyncio.run(Router({"echo": lambda data, request: data}).dispatch(payload))
    response = parse_message(Frame(MessageType.RESPONSE, answer))
    assert response.envelope.code in (200, 400, 500)  # type: ignore[attr-defined]
