"""Every fault kind, observed the way a Modbus master sees it: on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from simulators.modbus import (
    DeviceProfile,
    Fault,
    FaultError,
    ModbusSimulator,
    Point,
    parse_fault,
)
from simulators.modbus.faults import DEFAULT_GARBAGE
from tests.simulators.modbus.conftest import FakeClock, RawClient, read_holding

# Replies from this profile: address i holds 100 + i.
OK = {i: bytes([3, 2, 0, 100 + i]) for i in range(10)}


def _profile() -> DeviceProfile:
    return DeviceProfile(
        name="plain",
        points=[Point("holding", i, "uint16", value=100 + i) for i in range(10)],
    )


def _gateway() -> DeviceProfile:
    from simulators.modbus import UnitProfile

    points = [Point("holding", i, "uint16", value=100 + i) for i in range(10)]
    return DeviceProfile(name="gw", units=[UnitProfile(1, points), UnitProfile(2, points)])


@pytest.fixture
async def sim() -> AsyncIterator[ModbusSimulator]:
    async with ModbusSimulator([_gateway()]) as running:
        yield running


@pytest.fixture
async def client(sim: ModbusSimulator) -> AsyncIterator[RawClient]:
    raw = await RawClient.connect(sim.address)
    yield raw
    await raw.close()


async def _no_reply_yet(client: RawClient, wait: float = 0.2) -> bool:
    try:
        await asyncio.wait_for(client.reader.read(1), wait)
    except TimeoutError:
        return True
    return False


async def test_latency_holds_the_reply_back(sim: ModbusSimulator, client: RawClient) -> None:
    sim.add_fault(Fault(kind="latency", seconds=0.6))
    client.send(1, 1, read_holding(0, 1))
    assert await _no_reply_yet(client, 0.1)
    assert await client.frame(timeout=10) == (1, 1, OK[0])
    assert sim.counters.faults["latency"] == 1


async def test_random_latency_stays_in_its_range(sim: ModbusSimulator, client: RawClient) -> None:
    fault = sim.add_fault(Fault(kind="latency", seconds=0.5, max_seconds=0.7, seed=3))
    client.send(1, 1, read_holding(0, 1))
    assert await _no_reply_yet(client, 0.1)
    assert await client.frame(timeout=10) == (1, 1, OK[0])
    assert fault.fired == 1


async def test_a_delayed_reply_keeps_later_pipelined_replies_behind_it(
    sim: ModbusSimulator, client: RawClient
) -> None:
    sim.add_fault(Fault(kind="latency", seconds=0.3, address=0))
    for tid, address in ((10, 0), (11, 1), (12, 2)):
        client.send(tid, 1, read_holding(address, 1))
    replies = [await client.frame(timeout=10) for _ in range(3)]
    assert replies == [(10, 1, OK[0]), (11, 1, OK[1]), (12, 1, OK[2])]


async def test_exception_fault_answers_the_given_code(
    sim: ModbusSimulator, client: RawClient
) -> None:
    sim.add_fault(Fault(kind="exception", code=6, function=3))
    assert await client.request(1, read_holding(0, 1)) == bytes([0x83, 0x06])


async def test_silence_never_answers_but_the_connection_lives_on(
    sim: ModbusSimulator, client: RawClient
) -> None:
    sim.add_fault(Fault(kind="silence", times=1))
    client.send(1, 1, read_holding(0, 1))
    assert await _no_reply_yet(client)
    assert await client.request(1, read_holding(1, 1), tid=2) == OK[1]


async def test_reset_sends_rst(sim: ModbusSimulator, client: RawClient) -> None:
    sim.add_fault(Fault(kind="reset"))
    client.send(1, 1, read_holding(0, 1))
    with pytest.raises(ConnectionResetError):
        await client.read_bytes(1)


async def test_close_after_answers_n_requests_then_closes(
    sim: ModbusSimulator, client: RawClient
) -> None:
    sim.add_fault(Fault(kind="close_after", after=2))
    assert await client.request(1, read_holding(0, 1), tid=1) == OK[0]
    assert await client.request(1, read_holding(1, 1), tid=2) == OK[1]
    client.send(3, 1, read_holding(2, 1))
    assert await asyncio.wait_for(client.reader.read(10), 2) == b""  # EOF, not RST


async def test_garbage_replaces_the_reply_with_bytes_that_are_not_modbus(
    sim: ModbusSimulator, client: RawClient
) -> None:
    sim.add_fault(Fault(kind="garbage"))
    client.send(1, 1, read_holding(0, 1))
    data = await client.read_bytes(len(DEFAULT_GARBAGE))
    assert data == DEFAULT_GARBAGE
    assert struct.unpack_from(">H", data, 2)[0] != 0  # its "protocol id" is not Modbus


async def test_garbage_of_random_bytes_is_seeded(sim: ModbusSimulator) -> None:
    got = []
    for _ in range(2):
        sim.clear_faults()
        sim.add_fault(Fault(kind="garbage", size=12, seed=5))
        raw = await RawClient.connect(sim.address)
        raw.send(1, 1, read_holding(0, 1))
        got.append(await raw.read_bytes(12))
        await raw.close()
    assert got[0] == got[1] and len(got[0]) == 12


async def test_fragment_sends_the_reply_in_pieces(sim: ModbusSimulator, client: RawClient) -> None:
    sim.add_fault(Fault(kind="fragment", pieces=3, pause=0.15))
    client.send(7, 1, read_holding(0, 2))
    chunks = []
    expected = struct.pack(">HHHB", 7, 0, 7, 1) + bytes([3, 4, 0, 100, 0, 101])
    while sum(map(len, chunks)) < len(expected):
        chunks.append(await asyncio.wait_for(client.reader.read(100), 5))
    assert b"".join(chunks) == expected
    assert len(chunks) == 3


async def test_wrong_tid_answers_with_another_transaction_id(
    sim: ModbusSimulator, client: RawClient
) -> None:
    sim.add_fault(Fault(kind="wrong_tid"))
    client.send(41, 1, read_holding(0, 1))
    assert await client.frame() == (42, 1, OK[0])
    sim.clear_faults()
    sim.add_fault(Fault(kind="wrong_tid", value=0xBEEF))
    client.send(43, 1, read_holding(0, 1))
    assert (await client.frame())[0] == 0xBEEF


@pytest.mark.parametrize(
    ("field", "check"),
    [
        ("protocol_id", lambda tid, pid, length, unit, pdu: pid == 1),
        ("length", lambda tid, pid, length, unit, pdu: length == 4),
        ("unit", lambda tid, pid, length, unit, pdu: unit == 2),
        ("function", lambda tid, pid, length, unit, pdu: pdu[0] == 4),
        ("byte_count", lambda tid, pid, length, unit, pdu: pdu[1] == 4 and len(pdu) == 4),
    ],
)
async def test_corrupt_damages_exactly_one_field(
    sim: ModbusSimulator, client: RawClient, field: str, check: object
) -> None:
    sim.add_fault(Fault(kind="corrupt", field=field))
    client.send(5, 1, read_holding(0, 1))
    raw = await client.read_bytes(11)  # the full, honest-length reply is 11 bytes
    tid, pid, length, unit = struct.unpack_from(">HHHB", raw)
    pdu = raw[7:]
    assert tid == 5
    assert check(tid, pid, length, unit, pdu)  # type: ignore[operator]
    # ...and nothing else changed
    intact = {"protocol_id": pid == 0, "length": length == 5, "unit": unit == 1}
    intact |= {"function": pdu[0] == 3, "byte_count": pdu[1] == 2}
    assert all(ok for name, ok in intact.items() if name != field)


async def test_corrupt_takes_an_explicit_value(sim: ModbusSimulator, client: RawClient) -> None:
    sim.add_fault(Fault(kind="corrupt", field="length", value=300))
    client.send(5, 1, read_holding(0, 1))
    raw = await client.read_bytes(11)
    assert struct.unpack_from(">H", raw, 4)[0] == 300


async def test_refuse_closes_connections_beyond_the_limit(sim: ModbusSimulator) -> None:
    sim.add_fault(Fault(kind="refuse", limit=1))
    first = await RawClient.connect(sim.address)
    assert await first.request(1, read_holding(0, 1)) == OK[0]
    second = await RawClient.connect(sim.address)
    second.send(1, 1, read_holding(0, 1))
    assert await asyncio.wait_for(second.reader.read(10), 2) == b""
    await second.close()
    await first.close()
    assert sim.counters.refused == 1


async def test_refuse_with_reset_mode_sends_rst(sim: ModbusSimulator) -> None:
    sim.add_fault(Fault(kind="refuse", limit=0, mode="reset"))
    raw = await RawClient.connect(sim.address)
    with pytest.raises(ConnectionResetError):
        raw.send(1, 1, read_holding(0, 1))
        await raw.read_bytes(1)
    await raw.close()


async def test_refuse_with_backlog_mode_stops_accepting_until_a_slot_frees(
    sim: ModbusSimulator,
) -> None:
    sim.add_fault(Fault(kind="refuse", limit=1, mode="backlog"))
    first = await RawClient.connect(sim.address)
    assert await first.request(1, read_holding(0, 1)) == OK[0]
    # The kernel still completes the handshake, but nobody reads the request.
    second = await RawClient.connect(sim.address)
    second.send(1, 1, read_holding(1, 1))
    assert await _no_reply_yet(second)
    await first.close()
    assert await second.frame(timeout=5) == (1, 1, OK[1])
    await second.close()


async def test_faults_can_be_added_and_cleared_on_a_live_connection(
    sim: ModbusSimulator, client: RawClient
) -> None:
    assert await client.request(1, read_holding(0, 1)) == OK[0]
    sim.add_fault(Fault(kind="exception", code=4))
    assert await client.request(1, read_holding(0, 1)) == bytes([0x83, 4])
    sim.clear_faults()
    assert await client.request(1, read_holding(0, 1)) == OK[0]


async def test_scope_by_unit_function_and_address(sim: ModbusSimulator, client: RawClient) -> None:
    sim.add_fault(Fault(kind="exception", code=6, unit=2, function=3, address=(5, 9)))
    assert await client.request(2, read_holding(5, 1)) == bytes([0x83, 6])
    assert await client.request(2, read_holding(3, 3)) == bytes([0x83, 6])  # overlaps 5
    assert await client.request(2, read_holding(0, 2)) == bytes([3, 4, 0, 100, 0, 101])
    assert await client.request(1, read_holding(5, 1)) == OK[5]
    assert await client.request(2, bytes([4, 0, 5, 0, 1])) == bytes([0x84, 2])  # fc 4, no fault


async def test_every_nth_request_fires(sim: ModbusSimulator, client: RawClient) -> None:
    sim.add_fault(Fault(kind="exception", code=6, every=3))
    replies = [await client.request(1, read_holding(0, 1), tid=i) for i in range(6)]
    assert [r[0] for r in replies] == [3, 3, 0x83, 3, 3, 0x83]


async def test_probability_is_reproducible_with_a_seed(sim: ModbusSimulator) -> None:
    patterns = []
    for _ in range(2):
        sim.clear_faults()
        sim.add_fault(Fault(kind="exception", code=6, probability=0.5, seed=11))
        raw = await RawClient.connect(sim.address)
        patterns.append([(await raw.request(1, read_holding(0, 1)))[0] for _ in range(20)])
        await raw.close()
    assert patterns[0] == patterns[1]
    assert 0 < patterns[0].count(0x83) < 20


async def test_device_scope_picks_one_of_several_devices() -> None:
    async with ModbusSimulator([_profile(), _profile()]) as sim:
        sim.add_fault(Fault(kind="exception", code=6, device=1))
        a = await RawClient.connect(sim.addresses[0])
        b = await RawClient.connect(sim.addresses[1])
        assert await a.request(1, read_holding(0, 1)) == OK[0]
        assert await b.request(1, read_holding(0, 1)) == bytes([0x83, 6])
        await a.close()
        await b.close()


async def test_frames_that_are_not_modbus_drop_the_connection(
    sim: ModbusSimulator, client: RawClient
) -> None:
    client.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await asyncio.wait_for(client.reader.read(10), 2) == b""
    assert sim.counters.malformed == 1


async def test_a_fault_for_a_device_that_does_not_exist_is_refused(sim: ModbusSimulator) -> None:
    with pytest.raises(FaultError, match="device: no device 'boilr' \\(devices: gw"):
        sim.add_fault(Fault(kind="silence", device="boilr"))


async def test_random_pipelines_with_random_delays_keep_order_and_tids(
    sim: ModbusSimulator,
) -> None:
    rng = random.Random(2024)
    sim.add_fault(Fault(kind="latency", seconds=0.0, max_seconds=0.03, address=(0, 4), seed=1))
    sim.add_fault(Fault(kind="silence", address=9, every=2))
    requests = [(rng.randrange(0x10000), rng.choice((1, 2)), rng.randrange(10)) for _ in range(150)]
    stream = b"".join(
        struct.pack(">HHHB", tid, 0, 6, unit) + read_holding(address, 1)
        for tid, unit, address in requests
    )
    expected, nines = [], 0
    for tid, unit, address in requests:
        if address == 9:
            nines += 1
            if nines % 2 == 0:
                continue  # every second read of address 9 is silenced
        expected.append((tid, unit, OK[address]))
    client = await RawClient.connect(sim.address)
    pos = 0
    while pos < len(stream):  # cut the stream anywhere, as TCP may
        step = rng.randint(1, 40)
        client.writer.write(stream[pos : pos + step])
        pos += step
    replies = [await client.frame(timeout=5) for _ in expected]
    await client.close()
    assert replies == expected


async def test_a_windowed_silence_takes_a_device_offline_and_back_for_a_pymodbus_master() -> None:

    clock = FakeClock()
    offline = parse_fault("silence,device=plain,from=14,until=40")
    async with ModbusSimulator([_profile()], clock=clock, faults=[offline]) as sim:
        host, port = sim.address
        client = AsyncModbusTcpClient(host, port=port, timeout=0.5, retries=0)
        await client.connect()
        try:
            clock.advance(13.9)
            before = await client.read_holding_registers(0, count=1, device_id=1)
            clock.advance(0.1)  # t = 14: the window opens (inclusive)
            with pytest.raises(ModbusIOException):
                await client.read_holding_registers(0, count=1, device_id=1)
            clock.advance(26)  # t = 40: the window closes (exclusive)
            if not client.connected:  # pymodbus may drop a connection that timed out
                await client.connect()
            after = await client.read_holding_registers(0, count=1, device_id=1)
        finally:
            client.close()
    assert before.registers == [100]
    assert after.registers == [100]
    assert offline.fired == 1


@pytest.mark.parametrize("mode", ["close", "reset"])
async def test_a_windowed_refuse_turns_connections_away_only_inside_its_window(mode: str) -> None:

    clock = FakeClock()
    async with ModbusSimulator([_profile()], clock=clock) as sim:
        sim.add_fault(parse_fault(f"refuse:0,mode={mode},from=5,until=9"))
        early = await RawClient.connect(sim.address)
        assert await early.request(1, read_holding(0, 1)) == OK[0]
        clock.advance(5)
        refused = await RawClient.connect(sim.address)
        refused.send(1, 1, read_holding(0, 1))
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(refused.reader.read(10), 2) == b""
        await refused.close()
        # A connection made before the window opened is not cut by it.
        assert await early.request(1, read_holding(1, 1), tid=2) == OK[1]
        await early.close()
        clock.advance(4)
        late = await RawClient.connect(sim.address)
        assert await late.request(1, read_holding(2, 1)) == OK[2]
        await late.close()
        assert sim.counters.refused == 1


async def test_windowed_exception_and_close_after_hold_only_inside_the_window() -> None:

    clock = FakeClock()
    async with ModbusSimulator([_profile()], clock=clock) as windowed:
        windowed.add_fault(parse_fault("exception:4,device=plain,from=10,until=20"))
        windowed.add_fault(parse_fault("close_after:2,from=30"))
        client = await RawClient.connect(windowed.address)
        answers = []
        for t in (9.9, 10, 19.9, 20, 29.9, 30):
            clock.now = 1000.0 + t
            answers.append(await client.request(1, read_holding(0, 1), tid=int(t * 10)))
        assert answers == [OK[0], bytes([0x83, 4]), bytes([0x83, 4]), OK[0], OK[0], OK[0]]
        client.send(1, 1, read_holding(0, 1))  # the 2nd request since t = 30
        assert await client.frame() == (1, 1, OK[0])
        assert await asyncio.wait_for(client.reader.read(10), 2) == b""
        await client.close()


async def test_a_backlog_window_ends_on_its_own_with_nobody_connecting_or_leaving() -> None:
    # The accept loop waits for the window's edge, not only for connections and faults
    # changing: nothing else would wake it here.
    clock = FakeClock()
    async with ModbusSimulator([_profile()], clock=clock) as sim:
        sim.add_fault(parse_fault("refuse:0,mode=backlog,until=0.2"))
        waiting = await RawClient.connect(sim.address)  # the kernel completes the handshake
        waiting.send(1, 1, read_holding(0, 1))
        assert await _no_reply_yet(waiting)
        clock.advance(0.2)
        assert await waiting.frame(timeout=5) == (1, 1, OK[0])
        await waiting.close()
