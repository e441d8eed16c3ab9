"""The poller against simulated devices: merged reads, bad points isolated, dead devices
backed off and reported, and no device ever holding up another."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from mcptool.errors import UsageError
from mcptool.modbus.functions import WRITE_SINGLE_REGISTER, PduError
from mcptool.modbus.pdu import ReadOnlyError
from mcptool.modbus.poller import (
    DevicePoller,
    DeviceSpec,
    DeviceStatus,
    ErrorKind,
    Poller,
    PollerHooks,
    PollResult,
    shared_connection_problems,
)
from mcptool.modbus.registermap import DataType, Point, ReadRequest, Table
from simulators.modbus import DeviceProfile, Fault, ModbusSimulator
from simulators.modbus import Point as SimPoint
from tests.modbus.peers import recording_server


class Recorder(PollerHooks):
    def __init__(self) -> None:
        self.results: list[PollResult] = []
        self.statuses: list[DeviceStatus] = []
        self.errors: list[tuple[str, ErrorKind]] = []

    def on_result(self, result: PollResult) -> None:
        self.results.append(result)

    def on_status(self, status: DeviceStatus) -> None:
        self.statuses.append(status)

    def on_error(self, device: str, kind: ErrorKind) -> None:
        self.errors.append((device, kind))

    def of(self, device: str) -> list[PollResult]:
        return [r for r in self.results if r.device == device]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def floats_profile(name: str, count: int, skip: tuple[int, ...] = ()) -> DeviceProfile:
    points = [
        SimPoint("holding", i * 2, "float32", value=float(i), name=f"p{i}")
        for i in range(count)
        if i not in skip
    ]
    return DeviceProfile(name=name, points=points)


def floats_spec(name: str, address: tuple[str, int], count: int, **kw: object) -> DeviceSpec:
    points = tuple(Point(f"p{i}", Table.HOLDING, i * 2, DataType.FLOAT32) for i in range(count))
    settings: dict[str, object] = {"interval": 0.05, "timeout": 0.5, "backoff_initial": 0.05}
    settings.update(kw)
    return DeviceSpec(name, address[0], points, port=address[1], **settings)  # type: ignore[arg-type]


async def test_a_poll_reads_every_point_with_as_few_requests_as_possible() -> None:
    async with ModbusSimulator([floats_profile("d", 100)]) as sim:
        hooks = Recorder()
        async with Poller([floats_spec("d", sim.address, 100)], hooks):
            await until(lambda: len(hooks.results) >= 3)
        polls = len(hooks.results)
        assert hooks.results[0].values == [float(i) for i in range(100)]
        assert not hooks.results[0].errors
        # 100 float32 = 200 registers: two reads a poll (124 + 76), not 100
        assert sim.counters.total(function=3) in (2 * polls, 2 * polls + 1, 2 * polls + 2)


async def test_an_illegal_address_marks_that_point_bad_and_keeps_the_rest() -> None:
    async with ModbusSimulator([floats_profile("d", 20, skip=(7,))]) as sim:
        hooks = Recorder()
        async with Poller([floats_spec("d", sim.address, 20)], hooks) as poller:
            await until(lambda: len(hooks.results) >= 3)
            reads, polls = sim.counters.total(function=3), len(hooks.results)
            await until(lambda: len(hooks.results) >= polls + 5)
            reads_later, polls_later = sim.counters.total(function=3), len(hooks.results)
        first, last = hooks.results[0], hooks.results[-1]
        for result in (first, last):
            assert result.values[7] is None
            assert "illegal data address" in result.errors[7]
            assert set(result.errors) == {7}
            assert result.values[:7] + result.values[8:] == [float(i) for i in range(20) if i != 7]
        assert poller.devices["d"].status.bad_points == ("p7",)
        assert ("d", ErrorKind.ILLEGAL_ADDRESS) in hooks.errors
        # once isolated, a poll is the few reads around the bad point, not a new split
        assert reads_later - reads <= 4 * (polls_later - polls + 1)


async def test_a_device_that_goes_silent_goes_offline_then_comes_back() -> None:
    async with ModbusSimulator([floats_profile("d", 4)]) as sim:
        hooks = Recorder()
        spec = floats_spec("d", sim.address, 4, timeout=0.2, backoff_max=0.3)
        async with Poller([spec], hooks):
            await until(lambda: len(hooks.results) >= 2)
            silence = sim.add_fault(Fault(kind="silence"))
            await until(lambda: any(not s.online for s in hooks.statuses))
            offline = next(s for s in hooks.statuses if not s.online)
            assert offline.reason.startswith("timeout")
            polls_while_silent = len(hooks.results)
            sim.remove_fault(silence)
            await until(
                lambda: hooks.statuses[-1].online and len(hooks.results) > polls_while_silent
            )
        assert ("d", ErrorKind.TIMEOUT) in hooks.errors


async def test_a_refused_connection_is_reported_and_retried_with_backoff() -> None:
    sim = ModbusSimulator([floats_profile("d", 2)])
    await sim.start()
    address = sim.address
    await sim.stop()
    hooks = Recorder()
    async with Poller([floats_spec("d", address, 2, backoff_max=0.2)], hooks):
        await until(lambda: len(hooks.errors) >= 3)
        assert {kind for _, kind in hooks.errors} == {ErrorKind.REFUSED}
        assert hooks.statuses and not hooks.statuses[-1].online
        restarted = ModbusSimulator([floats_profile("d", 2)], port=address[1])
        async with restarted:
            await until(lambda: len(hooks.results) >= 1)
    assert hooks.statuses[-1].online


async def test_a_slow_device_never_delays_the_others() -> None:
    async with ModbusSimulator([floats_profile("slow", 2), floats_profile("fast", 2)]) as sim:
        sim.add_fault(Fault(kind="latency", seconds=30.0, device="slow"))
        slow_address, fast_address = sim.addresses
        hooks = Recorder()
        specs = [
            floats_spec("slow", slow_address, 2, timeout=60.0),
            floats_spec("fast", fast_address, 2),
        ]
        async with Poller(specs, hooks):
            await until(lambda: len(hooks.of("fast")) >= 10)
        assert hooks.of("slow") == []


async def test_every_table_and_order_reads_right_from_an_independent_modbus_stack() -> None:
    from pyModbusTCP.server import DataBank, ModbusServer

    from mcptool.modbus.datatypes import encode
    from mcptool.modbus.registermap import ByteOrder

    bank = DataBank(coils_size=64, d_inputs_size=64, h_regs_size=64, i_regs_size=64)
    bank.set_holding_registers(0, encode(-1.5, "float32", "CDAB") + encode(-7, "int16"))
    bank.set_input_registers(10, encode(123456789, "uint32", "DCBA"))
    bank.set_coils(3, [True, False, True])
    bank.set_discrete_inputs(0, [False, True])
    server = ModbusServer("127.0.0.1", 0, no_block=True, data_bank=bank)
    server.start()
    try:
        port = server._service.server_address[1]
        points = (
            Point("f", Table.HOLDING, 0, DataType.FLOAT32, ByteOrder.CDAB),
            Point("i", Table.HOLDING, 2, DataType.INT16, scale=0.5),
            Point("u", Table.INPUT, 10, DataType.UINT32, ByteOrder.DCBA),
            Point("c3", Table.COIL, 3, DataType.BOOL),
            Point("c5", Table.COIL, 5, DataType.BOOL),
            Point("d1", Table.DISCRETE, 1, DataType.BOOL),
            Point("past_the_end", Table.HOLDING, 70, DataType.UINT16),
        )
        spec = DeviceSpec("peer", "127.0.0.1", points, port=port, interval=0.05)
        hooks = Recorder()
        async with Poller([spec], hooks):
            await until(lambda: len(hooks.results) >= 2)
    finally:
        server.stop()
    result = hooks.results[-1]
    assert result.values == [-1.5, -3.5, 123456789, True, True, True, None]
    assert set(result.errors) == {6}


async def test_units_behind_one_address_share_one_connection_and_fail_alone() -> None:
    from simulators.modbus import UnitProfile

    def unit(unit_id: int) -> UnitProfile:
        return UnitProfile(unit_id, floats_profile("u", 4).points)

    profile = DeviceProfile(name="gateway", units=[unit(1), unit(2)], absent_unit=0x0B)
    async with ModbusSimulator([profile]) as sim:
        hooks = Recorder()
        specs = [
            floats_spec(f"unit{u}", sim.address, 4, unit=u, backoff_max=0.2) for u in (1, 2, 3)
        ]
        async with Poller(specs, hooks) as poller:
            await until(lambda: len(hooks.of("unit1")) >= 5 and len(hooks.of("unit2")) >= 5)
            await until(lambda: not poller.devices["unit3"].status.online and hooks.errors != [])
            statuses = {name: device.status for name, device in poller.devices.items()}
        connections = sim.counters.connections
    assert connections == 1
    assert statuses["unit1"].online and statuses["unit2"].online
    assert "0x0B" in statuses["unit3"].reason
    assert hooks.of("unit3") == []
    assert {kind for device, kind in hooks.errors if device == "unit3"} == {ErrorKind.EXCEPTION}


async def test_the_poller_refuses_a_read_beyond_the_limit_before_a_byte_is_sent() -> None:
    async with recording_server() as (port, wire):
        point = Point("p", Table.HOLDING, 0, DataType.UINT16)
        device = DevicePoller(DeviceSpec("d", "127.0.0.1", (point,), port=port), PollerHooks())
        # A plan the planner never makes (126 registers): the core's entry will not build it.
        device._set_plan([ReadRequest(Table.HOLDING, 0, 126, (point,))])
        await device.connect()
        try:
            with pytest.raises(PduError, match="count 126 is out of range: use 1-125"):
                await device.poll_once()
        finally:
            await device.close()
    assert wire.received == b""


async def test_the_poller_refuses_a_pdu_that_is_not_a_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever a (broken) read plan turns into, a write never leaves the poller.
    write = WRITE_SINGLE_REGISTER.request(0, 1)
    monkeypatch.setattr(ReadRequest, "pdu", property(lambda self: write))
    async with recording_server() as (port, wire):
        point = Point("p", Table.HOLDING, 0, DataType.UINT16)
        device = DevicePoller(DeviceSpec("d", "127.0.0.1", (point,), port=port), PollerHooks())
        await device.connect()
        try:
            with pytest.raises(
                ReadOnlyError,
                match=r"function code 6 \(write single register\) can change a device",
            ):
                await device.poll_once()
        finally:
            await device.close()
    assert wire.received == b""


def test_devices_sharing_a_connection_must_agree_on_its_connect_timeout() -> None:
    point = (Point("p", Table.HOLDING, 0, DataType.UINT16),)
    specs = [
        DeviceSpec("a", "127.0.0.1", point, unit=1, connect_timeout=3.0),
        DeviceSpec("b", "127.0.0.1", point, unit=2, connect_timeout=1.0),
        DeviceSpec("c", "127.0.0.1", point, port=1502, connect_timeout=1.0),
    ]
    assert shared_connection_problems(specs) == [
        "connect_timeout differs between devices that share the connection to "
        "127.0.0.1:502 (a=3.0, b=1.0): give them one value"
    ]
    with pytest.raises(UsageError, match="connect_timeout differs"):
        Poller(specs)
    # Per-unit settings (timeout, interval, backoff) may differ on a shared connection.
    Poller([specs[0], DeviceSpec("b", "127.0.0.1", point, unit=2, timeout=0.2, interval=5.0)])


async def test_each_unit_behind_a_refused_connection_backs_off_by_its_own_settings() -> None:
    sim = ModbusSimulator([floats_profile("d", 2)])
    await sim.start()
    address = sim.address
    await sim.stop()
    hooks = Recorder()
    specs = [
        floats_spec("quick", address, 2, unit=1, backoff_initial=0.01, backoff_max=0.01),
        floats_spec("patient", address, 2, unit=2, backoff_initial=60.0, backoff_max=60.0),
    ]
    async with Poller(specs, hooks) as poller:
        await until(lambda: len([d for d, _ in hooks.errors if d == "quick"]) >= 5)
        loop_now = asyncio.get_running_loop().time()
        patient_due = poller.devices["patient"].next_due
    # Every refusal is reported to both units, but "patient" is not tried again before
    # its own 60 s backoff (with 20 % jitter), while "quick" retried every 10 ms.
    assert patient_due - loop_now > 30
    assert {k for d, k in hooks.errors if d == "patient"} == {ErrorKind.REFUSED}
