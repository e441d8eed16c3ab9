"""A connection tells connect failures apart and survives what a sweep throws at it."""

from __future__ import annotations

import asyncio
import errno

import pytest

from mcptool.modbus.connection import ModbusConnection, Outcome, classify_connect_error
from mcptool.modbus.mbap import Answer
from mcptool.modbus.pdu import ProbeRequest, ReadOnlyError
from tests.modbus.peers import normal_reply, raw_server, recording_server


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (TimeoutError(), Outcome.UNREACHABLE),
        (OSError(errno.ECONNREFUSED, "Connection refused"), Outcome.REFUSED),
        (OSError(errno.EHOSTUNREACH, "No route to host"), Outcome.UNREACHABLE),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), Outcome.UNREACHABLE),
        (OSError(errno.ETIMEDOUT, "Connection timed out"), Outcome.UNREACHABLE),
        (OSError(errno.ECONNRESET, "Connection reset by peer"), Outcome.RESET),
    ],
)
def test_connect_errors_map_to_one_outcome_each(error: BaseException, outcome: Outcome) -> None:
    # Routing errors cannot be produced on loopback; the mapping is pinned here instead.
    assert classify_connect_error(error).outcome is outcome


def test_an_error_that_is_not_about_the_network_is_not_swallowed() -> None:
    with pytest.raises(ValueError):
        classify_connect_error(ValueError("a bug"))


async def test_one_connection_serves_many_exchanges_with_their_own_ids() -> None:
    seen: list[int] = []

    def record(request: bytes) -> bytes:
        seen.append(int.from_bytes(request[:2], "big"))
        return normal_reply(request)

    async with raw_server(record) as port:
        connection = await ModbusConnection.open("127.0.0.1", port, connect_timeout=1)
        assert isinstance(connection, ModbusConnection)
        pdu = ProbeRequest().pdu
        try:
            for _ in range(3):
                reply, _ms = await connection.exchange(1, pdu, timeout=1)
                assert isinstance(reply, Answer)
        finally:
            connection.close()
    assert seen == [1, 2, 3]


async def test_a_connection_the_peer_closed_is_not_usable() -> None:
    async with raw_server(normal_reply, then="close") as port:
        connection = await ModbusConnection.open("127.0.0.1", port, connect_timeout=1)
        assert isinstance(connection, ModbusConnection)
        try:
            await connection.exchange(1, ProbeRequest().pdu, timeout=1)
            for _ in range(100):  # the FIN follows the reply closely
                if not connection.usable:
                    break
                await asyncio.sleep(0.01)
            assert not connection.usable
        finally:
            connection.close()


@pytest.mark.parametrize(
    "pdu",
    [
        bytes.fromhex("0600000001"),  # write single register
        bytes.fromhex("0f000000010101"),  # write multiple coils
        bytes.fromhex("0800010000"),  # diagnostics: restart communications
        bytes.fromhex("2b0d00"),  # MEI type other than device identification
        bytes.fromhex("1100"),  # report server id with a payload
        b"",
    ],
)
async def test_nothing_but_reads_can_go_out_even_through_the_raw_exchange(pdu: bytes) -> None:
    seen: list[bytes] = []

    def record(request: bytes) -> bytes:
        seen.append(request)
        return normal_reply(request)

    async with raw_server(record) as port:
        connection = await ModbusConnection.open("127.0.0.1", port, connect_timeout=1)
        assert isinstance(connection, ModbusConnection)
        try:
            with pytest.raises(ReadOnlyError):
                await connection.exchange(1, pdu, timeout=1)
            reply, _ms = await connection.exchange(1, ProbeRequest().pdu, timeout=1)
        finally:
            connection.close()
    assert isinstance(reply, Answer)
    assert len(seen) == 1 and seen[0][7] == 3  # only the read reached the device


async def test_a_read_with_a_write_frame_behind_it_never_reaches_the_wire() -> None:
    # Issue 13.5, exactly: a function-3 PDU that carries a complete function-6 frame
    # (write register 1 := 0) behind it. The old guard checked only the first byte, so
    # all 17 bytes went out; a device splitting frames by function-code length would
    # have executed the write.
    smuggled = bytes.fromhex("0300000001" + "000700000006010600010000")
    read = ProbeRequest().pdu
    async with recording_server() as (port, wire):
        connection = await ModbusConnection.open("127.0.0.1", port, connect_timeout=1)
        assert isinstance(connection, ModbusConnection)
        try:
            with pytest.raises(
                ReadOnlyError,
                match=r"refused \(read holding registers: the PDU is 17 bytes, must be exactly 5\)",
            ):
                await connection.exchange(1, smuggled, timeout=1)
            # TCP keeps order: once the reply to this read is in, anything sent before
            # it has reached the server too.
            reply, _ms = await connection.exchange(1, read, timeout=1)
        finally:
            connection.close()
    assert isinstance(reply, Answer)
    assert bytes(wire.received) == bytes.fromhex("00010000000601") + read
