"""RTU framing: every function's request and reply are pymodbus's RTU frames byte for byte,
and the decoders find each frame whole however the stream is cut, with noise between
frames and silences on the line."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.exceptionresponse import ExceptionResponse

from mcptool.modbus.functions import FUNCTIONS, exception_pdu
from mcptool.modbus.mbap import Answer, Expectation, Malformed, MalformedField
from mcptool.modbus.rtu import (
    ReplyDecoder,
    RequestDecoder,
    crc16,
    frame,
    inter_frame_delay,
)
from tests.modbus.test_functions import CASES

_CLIENT = FramerRTU(DecodePDU(is_server=False))
_SERVER = FramerRTU(DecodePDU(is_server=True))

GAP = 0.01


def test_the_crc_is_crc16_modbus() -> None:
    # The check value of CRC-16/MODBUS (reveng catalogue) and the classic probe frame.
    assert crc16(b"123456789") == 0x4B37
    assert frame(1, bytes.fromhex("03 00 00 00 01")) == bytes.fromhex("01 03 00 00 00 01 84 0a")
    assert crc16(frame(17, b"\x03\x00\x6b\x00\x03")) == 0


def test_the_silence_between_frames_is_3_5_characters_and_1_75_ms_above_19200_baud() -> None:
    assert inter_frame_delay(9600) == pytest.approx(3.5 * 11 / 9600)
    assert inter_frame_delay(115200) == 0.00175


def _cuts(data: st.DataObject, stream: bytes) -> list[bytes]:
    points = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=8)))
    pieces, last = [], 0
    for point in points:
        pieces.append(stream[last:point])
        last = point
    pieces.append(stream[last:])
    return [p for p in pieces if p]


@pytest.mark.parametrize("code", sorted(CASES), ids=lambda code: f"fc{code:#04x}")
@given(data=st.data(), unit=st.integers(1, 247))
def test_frames_are_pymodbus_rtu_frames_and_decode_whole_from_any_split(
    code: int, data: st.DataObject, unit: int
) -> None:
    case = data.draw(CASES[code])
    entry = FUNCTIONS[code]
    for ours, theirs in (
        (case.request, case.pymodbus_request),
        (case.response, case.pymodbus_response),
    ):
        theirs.dev_id = unit
        assert frame(unit, ours) == _CLIENT.buildFrame(theirs)
    # A device reads the request, a client the reply, each cut anywhere. Where the entry
    # knows the length, the frame is complete with its last byte, without a silence (as
    # over TCP); otherwise (0x08) at the silence after it.
    known = entry.request_size(case.request) is not None
    requests = RequestDecoder(gap=GAP)
    for piece in _cuts(data, frame(unit, case.request)):
        requests.feed(piece, 0.0)
    if not known:
        assert requests.requests() == []
        requests.silence(GAP)
    assert requests.requests() == [(unit, case.request)]
    replies = ReplyDecoder(gap=GAP)
    size = entry.response_size(case.request)
    replies.expect(Expectation(0, unit, code, size, entry.byte_counted))
    known = size is not None or entry.byte_counted or code == 0x2B
    pieces = _cuts(data, frame(unit, case.response))
    for i, piece in enumerate(pieces):
        replies.feed(piece, 0.0)
        assert (replies.reply() is not None) == (known and i == len(pieces) - 1)
    if not known:
        replies.silence(GAP)
        assert replies.reply() == Answer(case.response, len(case.response) + 3)
    replies.feed(b"", 0.0)
    assert replies.reply() is None


@given(code=st.sampled_from(sorted(CASES)), exception=st.integers(1, 11), unit=st.integers(1, 247))
def test_an_exception_reply_is_five_bytes_and_pymodbus_s(
    code: int, exception: int, unit: int
) -> None:
    decoder = ReplyDecoder(gap=None)
    decoder.expect(Expectation(0, unit, code, 5, False))
    decoder.feed(frame(unit, exception_pdu(code, exception)), 0.0)
    reply = decoder.reply()
    assert isinstance(reply, Answer) and reply.exception_code == exception and reply.size == 5
    theirs = ExceptionResponse(code, exception)
    theirs.dev_id = unit
    assert frame(unit, exception_pdu(code, exception)) == _CLIENT.buildFrame(theirs)


def _read_request(unit: int, address: int, count: int) -> bytes:
    return frame(unit, FUNCTIONS[3].request(address, count))  # type: ignore[attr-defined]


@given(
    data=st.data(),
    frames=st.lists(
        st.tuples(st.integers(1, 247), st.integers(0, 60000), st.integers(1, 125)),
        min_size=1,
        max_size=5,
    ),
    noises=st.lists(st.binary(min_size=0, max_size=20), min_size=5, max_size=5),
)
def test_a_device_finds_every_request_with_noise_between_frames_and_silences(
    data: st.DataObject, frames: list[tuple[int, int, int]], noises: list[bytes]
) -> None:
    # Line noise arrives in its own burst, set off by silences as on a real line.
    decoder = RequestDecoder(gap=GAP)
    now = 0.0
    for (unit, address, count), noise in zip(frames, noises, strict=False):
        # Noise that holds a frame with a good CRC is a frame: not noise.
        assume(
            not any(
                crc16(noise[i:j]) == 0
                for i in range(len(noise))
                for j in range(i + 4, len(noise) + 1)
            )
        )
        if noise:
            for piece in _cuts(data, noise):
                decoder.feed(piece, now)
                now += GAP / 10
            now += GAP
        for piece in _cuts(data, _read_request(unit, address, count)):
            decoder.feed(piece, now)
            now += GAP / 10
        now += GAP
    decoder.silence(now)
    wanted = [(u, FUNCTIONS[3].request(a, c)) for u, a, c in frames]  # type: ignore[attr-defined]
    assert decoder.requests() == wanted


@given(noise=st.binary(min_size=1, max_size=30), data=st.data())
@example(noise=bytes.fromhex("07 03 40"), data=None)  # the head of a 69-byte reply
def test_a_client_skips_noise_before_its_reply_over_tcp(
    noise: bytes, data: st.DataObject | None
) -> None:
    reply = frame(7, FUNCTIONS[3].response([42, 43]))  # type: ignore[attr-defined]
    stream = noise + reply
    # Noise that starts a frame with a good CRC is a frame, not noise.
    assume(
        not any(
            crc16(stream[i:j]) == 0
            for i in range(len(noise))
            for j in range(i + 4, len(stream) + 1)
        )
    )
    decoder = ReplyDecoder(gap=None)
    decoder.expect(Expectation(0, 7, 3, 6, True))
    for piece in _cuts(data, stream) if data is not None else [noise, reply]:
        decoder.feed(piece, 0.0)
    assert decoder.reply() == Answer(FUNCTIONS[3].response([42, 43]), 9)  # type: ignore[attr-defined]


def test_a_cut_off_frame_is_dropped_at_the_silence_and_the_next_frame_is_read() -> None:
    decoder = RequestDecoder(gap=GAP)
    whole = _read_request(1, 0, 1)
    decoder.feed(whole[:5], 0.0)  # the sender stopped half-way
    assert decoder.deadline() == pytest.approx(GAP)
    decoder.feed(whole, 1.0)
    assert decoder.requests() == [(1, whole[1:-2])]
    assert decoder.noise == 5


def test_a_bad_crc_is_counted_and_never_a_frame() -> None:
    decoder = ReplyDecoder(gap=GAP)
    decoder.expect(Expectation(0, 1, 3, 4, True))
    wire = bytearray(frame(1, bytes.fromhex("03 02 00 2a")))
    wire[-1] ^= 0xFF
    decoder.feed(bytes(wire), 0.0)
    decoder.silence(1.0)
    assert decoder.reply() is None
    assert "1 frame(s) with a bad CRC" in decoder.why_not()


def test_a_reply_with_another_byte_count_than_asked_is_malformed() -> None:
    decoder = ReplyDecoder(gap=None)
    decoder.expect(Expectation(0, 1, 3, 4, True))  # one register asked
    decoder.feed(frame(1, bytes.fromhex("03 04 00 2a 00 2b")), 0.0)
    reply = decoder.reply()
    assert isinstance(reply, Malformed) and reply.field is MalformedField.BYTE_COUNT
