"""The stream decoder: any split, many frames a chunk, garbage, limits, bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcptool.frame import (
    BadMagic,
    Frame,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    MessageType,
    TruncatedFrame,
    UnknownType,
    UnsupportedVersion,
    encode_frame,
)
from tests.frame.strategies import frames, splits

PING = encode_frame(Frame(MessageType.PING, bytes(8)))


def test_a_header_split_at_every_point_decodes_to_one_frame() -> None:
    for cut in range(1, len(PING)):
        decoder = FrameDecoder()
        assert decoder.feed(PING[:cut]) == []
        assert decoder.feed(PING[cut:]) == [Frame(MessageType.PING, bytes(8))]
        assert decoder.buffered == 0


def test_many_frames_in_one_chunk_come_out_in_order() -> None:
    wire = b"".join(encode_frame(Frame(MessageType.DATA, bytes([i]))) for i in range(100))
    out = FrameDecoder().feed(wire)
    assert [f.payload for f in out] == [bytes([i]) for i in range(100)]


@given(st.lists(frames(), max_size=8), st.data())
def test_any_split_of_a_valid_stream_decodes_to_the_same_frames(
    sent: list[Frame], data: st.DataObject
) -> None:
    wire = b"".join(encode_frame(f) for f in sent)
    decoder = FrameDecoder()
    received = [f for piece in data.draw(splits(wire)) for f in decoder.feed(piece)]
    decoder.close()
    assert received == sent


def test_a_length_above_the_limit_is_refused_before_its_payload_arrives() -> None:
    decoder = FrameDecoder(max_length=100)
    with pytest.raises(FrameTooLarge) as raised:
        decoder.feed(b"\x5a\x01\x00\x65\x20")
    assert raised.value.offset == 2
    assert "101" in str(raised.value)


def test_in_raise_mode_the_first_garbage_byte_is_named_and_earlier_frames_are_kept() -> None:
    decoder = FrameDecoder()
    with pytest.raises(BadMagic) as raised:
        decoder.feed(PING + b"GARBAGE")
    assert raised.value.offset == len(PING)
    assert raised.value.frames == [Frame(MessageType.PING, bytes(8))]  # type: ignore[attr-defined]


def test_after_an_error_the_decoder_stays_failed() -> None:
    decoder = FrameDecoder()
    with pytest.raises(BadMagic):
        decoder.feed(b"XXXXX")
    with pytest.raises(BadMagic):
        decoder.feed(PING)


def test_offsets_count_from_the_start_of_the_stream() -> None:
    decoder = FrameDecoder()
    decoder.feed(PING)
    decoder.feed(PING[:3])
    with pytest.raises(UnsupportedVersion) as raised:
        decoder.feed(PING[3:] + b"\x5a\x09\x00\x00\x10")
    # two whole PINGs (13 bytes each), then the bad version byte one past the magic
    assert raised.value.offset == 2 * len(PING) + 1


def test_unknown_types_are_typed_errors() -> None:
    with pytest.raises(UnknownType):
        FrameDecoder().feed(b"\x5a\x01\x00\x00\x7f")


def test_resync_skips_garbage_before_between_and_after_frames() -> None:
    decoder = FrameDecoder(on_garbage="resync")
    out = decoder.feed(b"noise" + PING + b"\x00\x01" + PING + b"zz")
    assert out == [Frame(MessageType.PING, bytes(8))] * 2
    assert decoder.skipped_bytes == 5 + 2 + 2
    assert decoder.resyncs == 3
    assert decoder.buffered == 0


def test_resync_treats_a_bad_header_that_starts_with_the_magic_as_garbage() -> None:
    decoder = FrameDecoder(on_garbage="resync")
    out = decoder.feed(b"\x5a\x07\x00\x00\x10" + PING)
    assert out == [Frame(MessageType.PING, bytes(8))]
    assert decoder.skipped_bytes == 5


def test_close_reports_a_stream_that_ends_inside_a_frame() -> None:
    decoder = FrameDecoder()
    decoder.feed(PING[:7])
    with pytest.raises(TruncatedFrame) as raised:
        decoder.close()
    assert "2 of 8 payload bytes" in str(raised.value)


def test_close_of_a_clean_stream_is_silent() -> None:
    decoder = FrameDecoder()
    decoder.feed(PING)
    decoder.close()


@pytest.mark.parametrize("bad", [-1, 70000])
def test_max_length_must_fit_the_length_field(bad: int) -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_length=bad)


@settings(max_examples=300)
@given(
    st.lists(st.one_of(st.binary(max_size=200), frames(60).map(encode_frame)), max_size=20),
    st.sampled_from(["raise", "resync"]),
    st.integers(0, 300),
)
def test_random_bytes_raise_only_frame_errors_and_memory_stays_bounded(
    chunks: list[bytes], mode: str, max_length: int
) -> None:
    decoder = FrameDecoder(max_length=max_length, on_garbage=mode)  # type: ignore[arg-type]
    try:
        for chunk in chunks:
            for frame in decoder.feed(chunk):
                assert len(frame.payload) <= max_length
            assert decoder.buffered < 5 + max_length
        decoder.close()
    except FrameError:
        assert mode == "raise" or decoder.buffered > 0


@given(st.lists(frames(40), min_size=1, max_size=5), st.binary(max_size=50), st.data())
def test_resync_recovers_every_frame_after_garbage_without_magic(
    sent: list[Frame], garbage: bytes, data: st.DataObject
) -> None:
    garbage = garbage.replace(b"\x5a", b"")
    wire = garbage + b"".join(encode_frame(f) for f in sent)
    decoder = FrameDecoder(on_garbage="resync")
    received = [f for piece in data.draw(splits(wire)) for f in decoder.feed(piece)]
    assert received == sent
    assert decoder.skipped_bytes == len(garbage)


@settings(max_examples=300)
@given(st.lists(frames(40), min_size=1, max_size=6), st.data())
def test_mutated_streams_raise_only_frame_errors_and_keep_memory_bounded(
    sent: list[Frame], data: st.DataObject
) -> None:
    wire = bytearray(b"".join(encode_frame(f) for f in sent))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(wire) - 1))
        wire[index] = data.draw(st.integers(0, 255))
    mode = data.draw(st.sampled_from(["raise", "resync"]))
    decoder = FrameDecoder(max_length=64, on_garbage=mode)
    try:
        for piece in data.draw(splits(bytes(wire))):
            decoder.feed(piece)
            assert decoder.buffered < 5 + 64
        decoder.close()
    except FrameError:
        pass
