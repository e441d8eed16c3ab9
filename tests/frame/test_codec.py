"""Single-frame encoding and decoding, and their equality with the construct definition."""

from __future__ import annotations

import pytest
from construct import ConstructError
from hypothesis import given
from hypothesis import strategies as st

from mcptool.frame import (
    MAX_LENGTH_LIMIT,
    BadMagic,
    Frame,
    FrameError,
    FrameTooLarge,
    MessageType,
    TrailingBytes,
    TruncatedFrame,
    UnknownType,
    UnsupportedVersion,
    decode_frame,
    encode_frame,
    spec,
)
from tests.frame.strategies import frames


def test_the_classic_request_frame_has_the_documented_bytes() -> None:
    wire = encode_frame(Frame(MessageType.PING, bytes(8)))
    assert wire.hex() == "5a01000810" + "00" * 8


def test_the_header_struct_is_read_off_the_construct_spec() -> None:
    assert spec.HEADER_STRUCT.format == ">BBHB"
    assert spec.HEADER_STRUCT.size == 5


@given(frames())
def test_decode_inverts_encode(frame: Frame) -> None:
    assert decode_frame(encode_frame(frame)) == frame


@given(frames())
def test_encoding_is_byte_identical_to_the_construct_definition(frame: Frame) -> None:
    built = spec.Frame.build(
        {"version": frame.version, "type": int(frame.type), "payload": frame.payload}
    )
    assert encode_frame(frame) == built


def _construct_parse_exact(data: bytes) -> tuple[int, int, bytes] | None:
    """What the construct definition accepts as exactly one valid v1 frame, else None."""
    try:
        parsed = spec.Frame.parse(data)
    except ConstructError:
        return None
    if len(data) != 5 + parsed.length:
        return None
    if parsed.version != 1 or parsed.type not in MessageType._value2member_map_:
        return None
    return parsed.version, parsed.type, parsed.payload


@given(st.one_of(st.binary(max_size=40), frames(30).map(encode_frame)))
def test_fast_decoder_accepts_exactly_what_the_construct_definition_accepts(data: bytes) -> None:
    expected = _construct_parse_exact(data)
    try:
        frame = decode_frame(data)
    except FrameError:
        assert expected is None
    else:
        assert expected == (frame.version, int(frame.type), frame.payload)


@pytest.mark.parametrize(
    ("data", "error", "offset"),
    [
        (b"\x41\x01\x00\x00\x10", BadMagic, 0),
        (b"\x5a\x02\x00\x00\x10", UnsupportedVersion, 1),
        (b"\x5a\x01\x00\x00\x7f", UnknownType, 4),
        (b"\x5a\x01\x00", TruncatedFrame, 3),
        (b"\x5a\x01\x00\x02\x10\x00", TruncatedFrame, 6),
        (b"\x5a\x01\x00\x00\x10\x00", TrailingBytes, 5),
    ],
)
def test_each_malformation_has_its_own_error_and_offset(
    data: bytes, error: type[FrameError], offset: int
) -> None:
    with pytest.raises(error) as raised:
        decode_frame(data)
    assert raised.value.offset == offset
    assert f"offset {offset}" in str(raised.value)


def test_encoding_refuses_a_payload_over_the_limit() -> None:
    with pytest.raises(FrameTooLarge):
        encode_frame(Frame(MessageType.DATA, bytes(MAX_LENGTH_LIMIT + 1)))
    with pytest.raises(FrameTooLarge):
        encode_frame(Frame(MessageType.DATA, bytes(11)), max_length=10)


def test_encoding_refuses_an_unknown_type() -> None:
    with pytest.raises(UnknownType):
        encode_frame(Frame(0x7F, b""))  # type: ignore[arg-type]


def test_frame_errors_are_value_errors_and_user_errors() -> None:
    from mcptool.errors import McptoolError

    assert issubclass(FrameError, ValueError)
    assert issubclass(FrameError, McptoolError)
