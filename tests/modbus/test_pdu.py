"""Requests are pymodbus's bytes, only reads can be built, and every reply field is checked."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadDiscreteInputsRequest
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
)

from mcptool.errors import UsageError
from mcptool.modbus.mbap import (
    Answer,
    Expectation,
    Malformed,
    MalformedField,
    Stale,
    check_reply,
    frame,
)
from mcptool.modbus.pdu import (
    ProbeRequest,
    ReadOnlyError,
    exception_name,
    identification_request_pdu,
    read_values,
    report_server_id_pdu,
)

CLASSES = {
    1: ReadCoilsRequest,
    2: ReadDiscreteInputsRequest,
    3: ReadHoldingRegistersRequest,
    4: ReadInputRegistersRequest,
}


def test_the_default_request_is_the_classic_twelve_bytes() -> None:
    request = ProbeRequest()
    assert frame(1, 1, request.pdu) == bytes.fromhex("000100000006010300000001")


@given(
    function=st.sampled_from([1, 2, 3, 4]),
    address=st.integers(0, 0xFFFF - 125),
    count=st.integers(1, 125),
    unit=st.integers(0, 255),
    tid=st.integers(0, 0xFFFF),
)
def test_request_frames_equal_pymodbus_own_framing(
    function: int, address: int, count: int, unit: int, tid: int
) -> None:
    ours = frame(tid, unit, ProbeRequest(function, address, count).pdu)
    pdu = CLASSES[function](address=address, count=count, dev_id=unit, transaction_id=tid)
    assert ours == FramerSocket(DecodePDU(is_server=False)).buildFrame(pdu)


@pytest.mark.parametrize("function", [5, 6, 8, 15, 16, 22, 23])
def test_write_and_diagnostic_function_codes_cannot_be_built(function: int) -> None:
    with pytest.raises(ReadOnlyError, match=f"function code {function} .*only reads"):
        ProbeRequest(function=function)


@pytest.mark.parametrize("function", [0, 7, 0x11, 0x2B, 0x41, 0x80, 0x83, 255])
def test_anything_that_is_not_a_read_cannot_be_built(function: int) -> None:
    with pytest.raises(ReadOnlyError, match="not a read"):
        ProbeRequest(function=function)


@pytest.mark.parametrize(
    ("function", "address", "count", "message"),
    [
        (3, 0, 126, "count 126 is out of range for function 3: use 1-125"),
        (1, 0, 2001, "use 1-2000"),
        (3, 0, 0, "count 0"),
        (3, 65536, 1, "address 65536 is out of range"),
        (3, 65535, 2, "runs past register 65535"),
    ],
)
def test_impossible_reads_are_usage_errors(
    function: int, address: int, count: int, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        ProbeRequest(function, address, count)


def test_identification_requests_are_pymodbus_encodings() -> None:
    assert identification_request_pdu(1, 0) == bytes.fromhex("2b0e0100")
    assert identification_request_pdu(2, 3) == bytes.fromhex("2b0e0203")
    assert report_server_id_pdu() == b"\x11"


EXPECT = Expectation(transaction_id=7, unit=1, function=3, response_size=4, byte_counted=True)


def reply(
    tid: int = 7,
    protocol: int = 0,
    length: int | None = None,
    unit: int = 1,
    function: int = 3,
    body: bytes = b"\x02\x04\xd2",
) -> bytes:
    pdu = bytes([function]) + body
    size = len(pdu) + 1 if length is None else length
    return struct.pack(">HHHB", tid, protocol, size, unit) + pdu


def test_a_good_reply_is_an_answer_with_its_values() -> None:
    verdict = check_reply(reply(), EXPECT)
    assert verdict == Answer(b"\x03\x02\x04\xd2", 11)
    assert read_values(ProbeRequest(), verdict.pdu) == (1234,)


def test_bits_are_cut_to_the_count_asked() -> None:
    assert read_values(ProbeRequest(1, 0, 3), b"\x01\x01\x05") == (True, False, True)


def test_an_exception_reply_carries_its_code() -> None:
    verdict = check_reply(reply(function=0x83, body=b"\x02"), EXPECT)
    assert isinstance(verdict, Answer)
    assert verdict.exception_code == 2


def test_every_prefix_of_a_good_reply_asks_for_more() -> None:
    whole = reply()
    for cut in range(len(whole)):
        assert check_reply(whole[:cut], EXPECT) is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (reply(protocol=1), MalformedField.PROTOCOL_ID),
        (b"HTTP/1.1 400 Bad Request\r\n", MalformedField.PROTOCOL_ID),
        (reply(length=0), MalformedField.LENGTH),
        (reply(length=300), MalformedField.LENGTH),
        (reply(length=9), MalformedField.LENGTH),
        (reply(length=4), MalformedField.LENGTH),
        (reply(tid=8), MalformedField.TRANSACTION_ID),
        (reply(unit=2), MalformedField.UNIT),
        (reply(function=4), MalformedField.FUNCTION),
        (reply(function=0x84, body=b"\x02"), MalformedField.FUNCTION),
        (reply(body=b"\x03\x04\xd2"), MalformedField.BYTE_COUNT),
        (reply(body=b"\x04\x04\xd2\x00\x01"), MalformedField.BYTE_COUNT),
        (reply(function=0x83, body=b"\x02\x00"), MalformedField.LENGTH),
    ],
)
def test_each_broken_field_is_named(data: bytes, field: MalformedField) -> None:
    verdict = check_reply(data, EXPECT)
    assert isinstance(verdict, Malformed), verdict
    assert verdict.field is field


def test_a_late_reply_to_a_timed_out_request_is_skipped_whole() -> None:
    late = reply(tid=6)
    assert check_reply(late + reply(), EXPECT, {6}) == Stale(len(late))
    assert check_reply(late[:5], EXPECT, {6}) is None


def test_exception_names_follow_the_specification() -> None:
    assert exception_name(2) == "illegal data address"
    assert exception_name(0x0B) == "gateway target device failed to respond"
    assert "non-standard" in exception_name(0x42)


@given(st.binary(max_size=300))
def test_no_bytes_make_the_checker_raise(data: bytes) -> None:
    verdict = check_reply(data, EXPECT, {1, 2})
    assert verdict is None or isinstance(verdict, Answer | Malformed | Stale)
