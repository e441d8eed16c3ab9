"""The Modbus core: every function code's request and response round-trip through its one
entry and are pymodbus's bytes, frame for frame; the read-only guard is the entry's rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDiscreteInputsRequest,
    ReadDiscreteInputsResponse,
    WriteMultipleCoilsRequest,
    WriteMultipleCoilsResponse,
    WriteSingleCoilRequest,
    WriteSingleCoilResponse,
)
from pymodbus.pdu.diag_message import ReturnQueryDataRequest, ReturnQueryDataResponse
from pymodbus.pdu.exceptionresponse import ExceptionResponse
from pymodbus.pdu.mei_message import (
    ReadDeviceInformationRequest,
    ReadDeviceInformationResponse,
)
from pymodbus.pdu.other_message import ReportDeviceIdRequest, ReportDeviceIdResponse
from pymodbus.pdu.register_message import (
    MaskWriteRegisterRequest,
    MaskWriteRegisterResponse,
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
    ReadWriteMultipleRegistersRequest,
    ReadWriteMultipleRegistersResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
)

from mcptool.modbus import functions as core
from mcptool.modbus.functions import (
    EXCEPTION_NAMES,
    FUNCTIONS,
    DeviceInformation,
    ExceptionCode,
    PduError,
    ReadRegisters,
    exception_pdu,
)
from mcptool.modbus.mbap import Answer, Expectation, check_reply, frame
from mcptool.modbus.pdu import ReadOnlyError, check_read_only_pdu

_CLIENT = FramerSocket(DecodePDU(is_server=False))
_SERVER = FramerSocket(DecodePDU(is_server=True))


@dataclass
class Case:
    """One exchange of one function, built by our entry and by pymodbus."""

    request: bytes
    pymodbus_request: ModbusPDU
    request_fields: tuple[Any, ...]
    response: bytes
    pymodbus_response: ModbusPDU
    parse_response: Callable[[bytes], Any]
    response_fields: Any


u16 = st.integers(0, 0xFFFF)


@st.composite
def address_and_count(draw: st.DrawFn, limit: int) -> tuple[int, int]:
    count = draw(st.integers(1, limit))
    return draw(st.integers(0, 0x10000 - count)), count


@st.composite
def read_bits(draw: st.DrawFn, code: int) -> Case:
    entry = FUNCTIONS[code]
    assert isinstance(entry, core.ReadBits)
    address, count = draw(address_and_count(entry.max_count))
    bits = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    request_class, response_class = {
        1: (ReadCoilsRequest, ReadCoilsResponse),
        2: (ReadDiscreteInputsRequest, ReadDiscreteInputsResponse),
    }[code]
    return Case(
        entry.request(address, count),
        request_class(address=address, count=count),
        (address, count),
        entry.response(bits),
        response_class(bits=bits),
        lambda pdu: entry.parse_response(pdu, count),
        tuple(bits),
    )


@st.composite
def read_registers(draw: st.DrawFn, code: int) -> Case:
    entry = FUNCTIONS[code]
    assert isinstance(entry, ReadRegisters)
    address, count = draw(address_and_count(entry.max_count))
    registers = draw(st.lists(u16, min_size=count, max_size=count))
    request_class, response_class = {
        3: (ReadHoldingRegistersRequest, ReadHoldingRegistersResponse),
        4: (ReadInputRegistersRequest, ReadInputRegistersResponse),
    }[code]
    return Case(
        entry.request(address, count),
        request_class(address=address, count=count),
        (address, count),
        entry.response(registers),
        response_class(registers=registers),
        entry.parse_response,
        tuple(registers),
    )


@st.composite
def write_single_coil(draw: st.DrawFn) -> Case:
    entry = core.WRITE_SINGLE_COIL
    address, value = draw(u16), draw(st.booleans())
    return Case(
        entry.request(address, value),
        WriteSingleCoilRequest(address=address, bits=[value]),
        (address, value),
        entry.response(address, value),
        WriteSingleCoilResponse(address=address, bits=[value]),
        entry.parse_response,
        (address, value),
    )


@st.composite
def write_single_register(draw: st.DrawFn) -> Case:
    entry = core.WRITE_SINGLE_REGISTER
    address, value = draw(u16), draw(u16)
    return Case(
        entry.request(address, value),
        WriteSingleRegisterRequest(address=address, registers=[value]),
        (address, value),
        entry.response(address, value),
        WriteSingleRegisterResponse(address=address, registers=[value]),
        entry.parse_response,
        (address, value),
    )


@st.composite
def diagnostics(draw: st.DrawFn) -> Case:
    # Sub-function 0 (return query data) is the one whose data pymodbus keeps as bytes.
    entry = core.DIAGNOSTICS
    data = draw(st.binary(min_size=2, max_size=20))
    return Case(
        entry.request(0, data),
        ReturnQueryDataRequest(message=data),
        (0, data),
        entry.response(0, data),
        ReturnQueryDataResponse(message=data),
        entry.parse_response,
        (0, data),
    )


@st.composite
def write_multiple_coils(draw: st.DrawFn) -> Case:
    entry = core.WRITE_MULTIPLE_COILS
    address, count = draw(address_and_count(entry.max_count))
    bits = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    return Case(
        entry.request(address, bits),
        WriteMultipleCoilsRequest(address=address, bits=bits),
        (address, tuple(bits)),
        entry.response(address, count),
        WriteMultipleCoilsResponse(address=address, count=count),
        entry.parse_response,
        (address, count),
    )


@st.composite
def write_multiple_registers(draw: st.DrawFn) -> Case:
    entry = core.WRITE_MULTIPLE_REGISTERS
    address, count = draw(address_and_count(entry.max_count))
    registers = draw(st.lists(u16, min_size=count, max_size=count))
    return Case(
        entry.request(address, registers),
        WriteMultipleRegistersRequest(address=address, registers=registers),
        (address, tuple(registers)),
        entry.response(address, count),
        WriteMultipleRegistersResponse(address=address, count=count),
        entry.parse_response,
        (address, count),
    )


@st.composite
def report_server_id(draw: st.DrawFn) -> Case:
    # pymodbus packs identifier + run status; to the core that is the opaque data.
    entry = core.REPORT_SERVER_ID
    identifier, running = draw(st.binary(min_size=1, max_size=40)), draw(st.booleans())
    data = identifier + (b"\xff" if running else b"\x00")
    return Case(
        entry.request(),
        ReportDeviceIdRequest(),
        (),
        entry.response(data),
        ReportDeviceIdResponse(identifier=identifier, status=running),
        entry.parse_response,
        data,
    )


@st.composite
def mask_write_register(draw: st.DrawFn) -> Case:
    entry = core.MASK_WRITE_REGISTER
    fields = (draw(u16), draw(u16), draw(u16))
    names = {"address": fields[0], "and_mask": fields[1], "or_mask": fields[2]}
    return Case(
        entry.request(*fields),
        MaskWriteRegisterRequest(**names),
        fields,
        entry.response(*fields),
        MaskWriteRegisterResponse(**names),
        entry.parse_response,
        fields,
    )


@st.composite
def read_write_registers(draw: st.DrawFn) -> Case:
    entry = core.READ_WRITE_REGISTERS
    read_address, read_count = draw(address_and_count(entry.max_read))
    write_address, write_count = draw(address_and_count(entry.max_write))
    written = draw(st.lists(u16, min_size=write_count, max_size=write_count))
    read = draw(st.lists(u16, min_size=read_count, max_size=read_count))
    return Case(
        entry.request(read_address, read_count, write_address, written),
        ReadWriteMultipleRegistersRequest(
            read_address=read_address,
            read_count=read_count,
            write_address=write_address,
            write_registers=written,
        ),
        (read_address, read_count, write_address, tuple(written)),
        entry.response(read),
        ReadWriteMultipleRegistersResponse(registers=read),
        entry.parse_response,
        tuple(read),
    )


@st.composite
def read_device_identification(draw: st.DrawFn) -> Case:
    entry = core.READ_DEVICE_IDENTIFICATION
    read_code, object_id = draw(st.integers(1, 4)), draw(st.integers(0, 255))
    ids = draw(st.lists(st.integers(0, 255), unique=True, max_size=6))
    objects = [(oid, draw(st.binary(max_size=20))) for oid in ids]
    return Case(
        entry.request(read_code, object_id),
        ReadDeviceInformationRequest(read_code=read_code, object_id=object_id),
        (read_code, object_id),
        entry.response(read_code, 0x83, objects),  # pymodbus always says conformity 0x83
        ReadDeviceInformationResponse(read_code=read_code, information=dict(objects)),
        entry.parse_response,
        DeviceInformation(read_code, 0x83, False, 0, tuple(objects)),
    )


CASES: dict[int, st.SearchStrategy[Case]] = {
    0x01: read_bits(0x01),
    0x02: read_bits(0x02),
    0x03: read_registers(0x03),
    0x04: read_registers(0x04),
    0x05: write_single_coil(),
    0x06: write_single_register(),
    0x08: diagnostics(),
    0x0F: write_multiple_coils(),
    0x10: write_multiple_registers(),
    0x11: report_server_id(),
    0x16: mask_write_register(),
    0x17: read_write_registers(),
    0x2B: read_device_identification(),
}


def test_every_registered_function_code_has_a_round_trip_case() -> None:
    # A function added to the registry without a case here fails this test.
    assert set(CASES) == set(FUNCTIONS)


@pytest.mark.parametrize("code", sorted(CASES), ids=lambda code: f"fc{code:#04x}")
@given(data=st.data(), tid=u16, unit=st.integers(0, 255))
def test_requests_and_responses_are_pymodbus_frames_and_round_trip(
    code: int, data: st.DataObject, tid: int, unit: int
) -> None:
    case = data.draw(CASES[code])
    entry = FUNCTIONS[code]
    for ours, theirs in (
        (case.request, case.pymodbus_request),
        (case.response, case.pymodbus_response),
    ):
        theirs.dev_id, theirs.transaction_id = unit, tid
        assert frame(tid, unit, ours) == _CLIENT.buildFrame(theirs)
    # Ours back through our entry: the same fields, and the whole PDU is accepted.
    assert entry.parse_request(case.request) == case.request_fields
    assert case.parse_response(case.response) == case.response_fields
    # pymodbus's decoders read our bytes as the same message.
    assert type(_SERVER.decoder.decode(case.request)) is type(case.pymodbus_request)
    assert type(_CLIENT.decoder.decode(case.response)) is type(case.pymodbus_response)
    # The framing layer hands the response over whole, sized by the entry.
    size = entry.response_size(case.request)
    expect = Expectation(tid, unit, code, size, entry.byte_counted)
    assert check_reply(frame(tid, unit, case.response), expect) == Answer(
        case.response, 7 + len(case.response)
    )


@pytest.mark.parametrize("code", sorted(CASES), ids=lambda code: f"fc{code:#04x}")
@given(data=st.data(), extra=st.binary(min_size=1, max_size=12))
def test_a_request_with_bytes_after_it_is_refused_by_its_entry(
    code: int, data: st.DataObject, extra: bytes
) -> None:
    case = data.draw(CASES[code])
    if code == 0x08:  # diagnostics data is free-form: any length up to the PDU limit
        return
    with pytest.raises(PduError):
        FUNCTIONS[code].parse_request(case.request + extra)


def test_exception_responses_are_pymodbus_frames_and_every_code_has_its_name() -> None:
    for code in ExceptionCode:
        theirs = ExceptionResponse(3, code)
        theirs.dev_id, theirs.transaction_id = 1, 9
        assert frame(9, 1, exception_pdu(3, code)) == _CLIENT.buildFrame(theirs)
        assert code in EXCEPTION_NAMES
    assert EXCEPTION_NAMES[0x07] == "negative acknowledge"


@pytest.mark.parametrize(
    ("pdu", "why"),
    [
        ("0300000000", "count 0"),
        ("030000007e", "count 126"),
        ("01000007d1", "count 2001"),
        ("03ffff0002", "runs past 65535"),
        ("030000", "3 bytes"),
        ("0300000001" + "00", "6 bytes"),
        ("2b0e0500", "read device id code 5"),
        ("2b0d0100", "MEI type 13"),
        ("1100", "2 bytes"),
    ],
)
def test_the_guard_checks_the_whole_pdu_against_its_entry(pdu: str, why: str) -> None:
    with pytest.raises(ReadOnlyError, match=why):
        check_read_only_pdu(bytes.fromhex(pdu))


@pytest.mark.parametrize(
    "code", sorted(code for code, entry in FUNCTIONS.items() if not entry.reads)
)
@given(data=st.data())
def test_the_guard_refuses_every_request_of_a_function_that_writes(
    code: int, data: st.DataObject
) -> None:
    case = data.draw(CASES[code])
    with pytest.raises(ReadOnlyError, match="can change a device"):
        check_read_only_pdu(case.request)


@pytest.mark.parametrize("code", sorted(code for code, entry in FUNCTIONS.items() if entry.reads))
@given(data=st.data())
def test_the_guard_lets_every_well_formed_read_through(code: int, data: st.DataObject) -> None:
    case = data.draw(CASES[code])
    assert check_read_only_pdu(case.request) is FUNCTIONS[code]


def test_a_function_added_in_one_place_is_known_to_the_guard_and_the_framing() -> None:
    # A vendor's read-only function 0x41 (two registers, "read status"): registering its
    # entry is all it takes for the guard to send it and the framing to size its reply.
    entry = ReadRegisters(0x41, "read status", max_count=2)
    assert 0x41 not in FUNCTIONS
    with pytest.raises(ReadOnlyError, match="not a read"):
        check_read_only_pdu(entry.request(0, 2))
    core.register(entry)
    try:
        assert check_read_only_pdu(entry.request(0, 2)) is entry
        with pytest.raises(ReadOnlyError, match="count 3"):
            check_read_only_pdu(bytes.fromhex("4100000003"))
        reply = frame(1, 1, entry.response([7, 8]))
        expect = Expectation(1, 1, 0x41, entry.response_size(entry.request(0, 2)), True)
        answer = check_reply(reply, expect)
        assert isinstance(answer, Answer)
        assert entry.parse_response(answer.pdu) == (7, 8)
    finally:
        del FUNCTIONS[0x41]
