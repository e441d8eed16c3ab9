"""Typed messages: round trips, agreement with the construct spec, clear payload errors."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from construct import ConstructError
from hypothesis import given
from hypothesis import strategies as st

from mcptool.frame import (
    Accept,
    Ack,
    Auth,
    BadPayload,
    Challenge,
    Close,
    Data,
    ErrorMessage,
    Event,
    Frame,
    FrameError,
    Hello,
    Message,
    MessageType,
    Ping,
    Pong,
    Reject,
    Request,
    RequestEnvelope,
    Response,
    ResponseEnvelope,
    decode_frame,
    parse_message,
    spec,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 2**64 - 1)
text = st.text(max_size=40)
node_ids = st.text(min_size=1, max_size=16)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Hello, node_ids, st.tuples(u8).map(tuple), st.binary(min_size=16, max_size=16)),
    st.builds(Challenge, u8, st.binary(min_size=16, max_size=16)),
    st.builds(Auth, st.binary(min_size=32, max_size=32)),
    st.builds(
        Accept,
        st.binary(min_size=16, max_size=16),
        u32,
        u8,
        u16,
        st.binary(min_size=32, max_size=32),
    ),
    st.builds(Reject, u8, text),
    st.builds(Ping, u64),
    st.builds(Pong, u64),
    st.builds(Data, u64, st.binary(max_size=64)),
    st.builds(Ack, u64),
    st.builds(
        Request,
        st.builds(RequestEnvelope, st.text(min_size=1, max_size=10), st.none() | st.integers()),
    ),
    st.builds(
        Response,
        st.builds(
            ResponseEnvelope,
            st.integers(100, 599),
            text,
            trace_id=st.none() | st.text(min_size=1, max_size=10),
        ),
    ),
    st.builds(Event, st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
    st.builds(ErrorMessage, u16, text),
    st.builds(Close, u8, text),
)

SPECS: dict[MessageType, Any] = {
    MessageType.HELLO: spec.Hello,
    MessageType.CHALLENGE: spec.Challenge,
    MessageType.AUTH: spec.Auth,
    MessageType.ACCEPT: spec.Accept,
    MessageType.REJECT: spec.Reject,
    MessageType.PING: spec.Ping,
    MessageType.PONG: spec.Pong,
    MessageType.DATA: spec.Data,
    MessageType.ACK: spec.Ack,
    MessageType.ERROR: spec.Error,
    MessageType.CLOSE: spec.Close,
}


@given(messages)
def test_every_message_survives_the_wire(message: Message) -> None:
    assert parse_message(decode_frame(message.encode())) == message


@given(st.sampled_from(sorted(SPECS)), st.binary(max_size=80))
def test_binary_payloads_are_accepted_exactly_when_the_construct_spec_accepts_them(
    message_type: MessageType, payload: bytes
) -> None:
    try:
        parsed = SPECS[message_type].parse(payload)
        if message_type is MessageType.HELLO and not parsed.node_id:
            parsed = None  # the protocol also requires a node id; construct cannot say so
    except (ConstructError, UnicodeDecodeError):
        parsed = None
    try:
        message = parse_message(Frame(message_type, payload))
    except BadPayload:
        assert parsed is None
    else:
        assert parsed is not None
        # and it builds back to the same bytes through the construct definition
        fields = {k: v for k, v in parsed.items() if not k.startswith("_")}
        assert SPECS[message_type].build(fields) == message.payload() == payload


@given(st.sampled_from(list(MessageType)), st.binary(max_size=80))
def test_any_payload_either_parses_or_raises_a_frame_error(
    message_type: MessageType, payload: bytes
) -> None:
    with contextlib.suppress(FrameError):
        parse_message(Frame(message_type, payload))


@pytest.mark.parametrize(
    ("message_type", "payload", "reason"),
    [
        (MessageType.ACK, b"\x00" * 7, "7 bytes, expected 8"),
        (MessageType.AUTH, b"\x00" * 33, "bytes left after the last field"),
        (MessageType.ACCEPT, b"\x00" * 40, "too short"),
        (MessageType.CLOSE, b"\x00\xff", "not valid UTF-8"),
        (MessageType.DATA, b"\x00" * 3, "needs at least 8"),
    ],
)
def test_a_malformed_payload_names_its_type_and_why(
    message_type: MessageType, payload: bytes, reason: str
) -> None:
    with pytest.raises(BadPayload) as raised:
        parse_message(Frame(message_type, payload))
    assert message_type.name in str(raised.value)
    assert reason in str(raised.value)


def test_hello_refuses_an_empty_or_overlong_node_id() -> None:
    with pytest.raises(BadPayload):
        Hello("", (1,), bytes(16)).payload()
    with pytest.raises(BadPayload):
        Hello("x" * 65, (1,), bytes(16)).payload()


def test_a_u64_out_of_range_cannot_be_built() -> None:
    with pytest.raises(BadPayload):
        Data(-1, b"").payload()
