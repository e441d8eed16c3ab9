"""The simulator is a real Modbus/TCP server: independent masters read it, pipelining works."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pyModbusTCP.client import ModbusClient

from mcptool.modbus.datatypes import decode
from simulators.modbus import DeviceProfile, ModbusSimulator, Point, SimulatorError, load_profile
from tests.conftest import require_program
from tests.simulators.modbus.conftest import (
    PROFILES,
    FakeClock,
    RawClient,
    StartSimulator,
    read_holding,
)


def _const_profile() -> DeviceProfile:
    return DeviceProfile(
        name="plain",
        points=[Point("holding", i, "uint16", value=100 + i) for i in range(10)]
        + [Point("coil", 0, value=True), Point("coil", 1), Point("coil", 2, value=True)],
    )


async def test_mbpoll_reads_holding_registers() -> None:
    mbpoll = require_program("mbpoll")
    async with ModbusSimulator([_const_profile()]) as sim:
        host, port = sim.address
        proc = await asyncio.create_subprocess_exec(
            mbpoll, "-m", "tcp", "-p", str(port), "-a", "1", "-r", "1", "-c", "5", "-1", host,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    # mbpoll references are 1-based: [1] is address 0.
    values = {
        int(ref): int(v) for ref, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", out.decode(), re.M)
    }
    assert values == {1: 100, 2: 101, 3: 102, 4: 103, 5: 104}


async def test_pymodbus_client_reads_floats_coils_and_identification() -> None:
    async with ModbusSimulator([load_profile(PROFILES / "boiler.toml")]) as sim:
        host, port = sim.address
        client = AsyncModbusTcpClient(host, port=port, timeout=2, retries=0)
        await client.connect()
        try:
            regs = await client.read_holding_registers(8, count=2, device_id=1)
            coils = await client.read_coils(0, count=1, device_id=1)
            info = await client.read_device_information(device_id=1)
        finally:
            client.close()
    assert decode(regs.registers, "float32") == 70.0
    assert coils.bits[0] is True
    assert info.information[0] == b"Acme Heating"
    assert info.information[1] == b"BX-200"


async def test_pymodbus_client_mask_writes_and_reads_writes() -> None:
    async with ModbusSimulator([_const_profile()]) as sim:
        host, port = sim.address
        client = AsyncModbusTcpClient(host, port=port, timeout=2, retries=0)
        await client.connect()
        try:
            # 100 = 0x64: AND 0x00F0 keeps 0x60, OR 0x000F sets the low nibble -> 0x6F.
            masked = await client.mask_write_register(
                address=0, and_mask=0x00F0, or_mask=0x000F, device_id=1
            )
            both = await client.readwrite_registers(
                read_address=0, read_count=3, write_address=2, values=[7], device_id=1
            )
        finally:
            client.close()
    assert not masked.isError(), masked
    assert not both.isError(), both
    assert both.registers == [0x6F, 101, 7]


async def test_pymodbustcp_client_reads_and_writes() -> None:
    async with ModbusSimulator([_const_profile()]) as sim:
        host, port = sim.address

        def talk() -> tuple[list[int] | None, bool, list[int] | None, list[bool] | None]:
            c = ModbusClient(host=host, port=port, unit_id=1, timeout=2.0, auto_open=True)
            try:
                before = c.read_holding_registers(0, 3)
                wrote = c.write_multiple_registers(1, [7, 8])
                after = c.read_holding_registers(0, 3)
                coils = c.read_coils(0, 3)
            finally:
                c.close()
            return before, wrote, after, coils

        before, wrote, after, coils = await asyncio.to_thread(talk)
    assert before == [100, 101, 102]
    assert wrote is True
    assert after == [100, 7, 8]
    assert coils == [True, False, True]


async def test_pipelined_requests_get_replies_in_order_with_their_own_tids() -> None:
    async with ModbusSimulator([_const_profile()]) as sim:
        client = await RawClient.connect(sim.address)
        tids = [0xFFFF, 3, 1000, 7, 42]
        client.writer.write(b"".join(
            struct.pack(">HHHB", tid, 0, 6, 1) + read_holding(i, 1) for i, tid in enumerate(tids)
        ))  # fmt: skip
        replies = [await client.frame() for _ in tids]
        await client.close()
    assert [r[0] for r in replies] == tids
    assert [struct.unpack(">H", r[2][2:4])[0] for r in replies] == [100, 101, 102, 103, 104]


async def test_requests_split_across_reads_are_reassembled() -> None:
    async with ModbusSimulator([_const_profile()]) as sim:
        client = await RawClient.connect(sim.address)
        frame = struct.pack(">HHHB", 9, 0, 6, 1) + read_holding(2, 2)
        for byte in frame:
            client.writer.write(bytes([byte]))
            await client.writer.drain()
        tid, unit, pdu = await client.frame()
        await client.close()
    assert (tid, unit, pdu) == (9, 1, bytes([3, 4, 0, 102, 0, 103]))


async def test_values_advance_with_the_injected_clock() -> None:
    clock = FakeClock()
    profile = DeviceProfile(
        points=[Point("holding", 0, "uint16", value={"kind": "ramp", "start": 5, "rate": 2})]
    )
    async with ModbusSimulator([profile], clock=clock) as sim:
        client = await RawClient.connect(sim.address)
        first = await client.request(1, read_holding(0, 1))
        clock.advance(10)
        later = await client.request(1, read_holding(0, 1))
        await client.close()
    assert first == bytes([3, 2, 0, 5])
    assert later == bytes([3, 2, 0, 25])


async def test_several_devices_listen_on_several_ports() -> None:
    profiles = [_const_profile(), load_profile(PROFILES / "digital_io.toml")]
    async with ModbusSimulator(profiles) as sim:
        addresses = sim.addresses
        a = await RawClient.connect(addresses[0])
        b = await RawClient.connect(addresses[1])
        from_a = await a.request(1, read_holding(0, 1))
        from_b = await b.request(1, bytes([1, 0, 0, 0, 16]))
        await a.close()
        await b.close()
        counters = sim.counters
    assert len({port for _, port in addresses}) == 2
    assert from_a == bytes([3, 2, 0, 100])
    assert from_b == bytes([1, 2, 0, 0])
    assert counters.requests[(1, 3)] == 1 and counters.requests[(1, 1)] == 1
    assert counters.connections == 2


async def test_pymodbustcp_follows_more_follows_through_long_identification() -> None:
    from simulators.modbus import Identity

    identity = Identity(
        vendor_name="V" * 100, product_code="P" * 100, product_name="N" * 120, model_name="M"
    )
    async with ModbusSimulator([DeviceProfile(identity=identity)]) as sim:
        host, port = sim.address

        def read_all() -> dict[int, bytes]:
            c = ModbusClient(host=host, port=port, timeout=2.0)
            objects: dict[int, bytes] = {}
            next_id = 0
            try:
                for _ in range(5):
                    reply = c.read_device_identification(read_code=2, object_id=next_id)
                    assert reply is not None, c.last_error_as_txt
                    objects.update(reply.objects_by_id)
                    if reply.more_follows != 0xFF:
                        break
                    next_id = reply.next_object_id
            finally:
                c.close()
            return objects

        objects = await asyncio.to_thread(read_all)
    assert objects == identity.objects()


async def test_fixture_factory_starts_bundled_profiles_on_ipv4(
    modbus_simulator: StartSimulator,
) -> None:
    sim = await modbus_simulator("power_meter", "digital_io")
    assert [host for host, _ in sim.addresses] == ["127.0.0.1", "127.0.0.1"]
    client = await RawClient.connect(sim.addresses[1])
    assert await client.request(1, bytes([1, 0, 0, 0, 16])) == bytes([1, 2, 0, 0])
    await client.close()


async def test_listens_on_ipv6_loopback() -> None:
    try:
        sim = await ModbusSimulator([_const_profile()], host="::1").start()
    except SimulatorError as exc:  # a host without IPv6 at all
        pytest.skip(str(exc))
    try:
        host, port = sim.address
        client = await RawClient.connect((host, port))
        assert await client.request(1, read_holding(0, 1)) == bytes([3, 2, 0, 100])
        await client.close()
    finally:
        await sim.stop()


async def test_a_port_in_use_is_one_clear_error() -> None:
    async with ModbusSimulator([_const_profile()]) as first:
        busy = first.address[1]
        with pytest.raises(SimulatorError, match=f"cannot listen on 127.0.0.1:{busy}"):
            await ModbusSimulator([_const_profile()], port=busy).start()


async def test_mbpoll_decodes_cdab_counters_and_abcd_floats_like_the_profile_says() -> None:
    mbpoll = require_program("mbpoll")
    clock = FakeClock()
    async with ModbusSimulator([load_profile(PROFILES / "gateway.toml")], clock=clock) as sim:
        host, port = sim.address

        async def poll(*args: str) -> dict[int, str]:
            proc = await asyncio.create_subprocess_exec(
                mbpoll, "-m", "tcp", "-p", str(port), *args, "-1", host,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 20)
            assert proc.returncode == 0, err.decode()
            return {int(r): v for r, v in re.findall(r"^\[(\d+)\]:\s+(\S+)", out.decode(), re.M)}

        # unit 2 is the power meter: export energy, uint32 CDAB at address 2 (mbpoll: CDAB)
        meter = await poll("-a", "2", "-r", "3", "-c", "1", "-t", "4:int")
        # unit 1 is the boiler: setpoint 70.0 float32 ABCD at address 8 (mbpoll -B: ABCD)
        boiler = await poll("-a", "1", "-r", "9", "-c", "1", "-t", "4:float", "-B")
    assert meter == {3: "1000"}
    assert float(boiler[9]) == 70.0


def _numbered_profiles(n: int) -> list[DeviceProfile]:
    return [
        DeviceProfile(name=f"dev{i}", points=[Point("holding", 0, "uint16", value=i)])
        for i in range(n)
    ]


async def _answers(sim: ModbusSimulator) -> list[bytes]:
    replies = []
    for address in sim.addresses:
        client = await RawClient.connect(address)
        try:
            replies.append(await client.request(1, read_holding(0, 1)))
        finally:
            await client.close()
    return replies


async def test_simulators_started_one_after_another_in_one_loop_all_answer() -> None:
    expected = [bytes([3, 2, 0, i]) for i in range(4)]
    for _ in range(2):
        async with ModbusSimulator(_numbered_profiles(4)) as sim:
            assert await _answers(sim) == expected
    # The third reuses the file descriptors of the stopped ones.
    async with ModbusSimulator(_numbered_profiles(4)) as sim:
        assert await _answers(sim) == expected


async def test_stopping_with_a_connection_waiting_to_be_accepted_leaves_no_loop_error() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        sim = await ModbusSimulator(_numbered_profiles(1)).start()
        await _answers(sim)  # the accept loop is armed again after serving this one
        waiting = socket.socket()
        waiting.setblocking(False)
        try:
            with contextlib.suppress(BlockingIOError):
                waiting.connect(sim.address)  # on loopback it is queued for accept at once
            await sim.stop()
            # A stale accept fires on the loop's next turn; wait for a later turn's echo.
            echo = loop.create_future()
            loop.call_soon(loop.call_soon, echo.set_result, None)
            await echo
        finally:
            waiting.close()
        async with ModbusSimulator(_numbered_profiles(2)) as again:
            assert await _answers(again) == [bytes([3, 2, 0, 0]), bytes([3, 2, 0, 1])]
    finally:
        loop.set_exception_handler(previous)
    assert [e.get("message") for e in errors] == []
