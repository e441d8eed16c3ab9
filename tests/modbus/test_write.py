"""The write path: a separate connection with its own guard; the read-only path cannot write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcptool.modbus.connection import ModbusConnection
from mcptool.modbus.functions import (
    FUNCTIONS,
    MASK_WRITE_REGISTER,
    READ_WRITE_REGISTERS,
    WRITE_MULTIPLE_COILS,
    WRITE_MULTIPLE_REGISTERS,
    WRITE_SINGLE_COIL,
    WRITE_SINGLE_REGISTER,
)
from mcptool.modbus.modicon import parse_address
from mcptool.modbus.pdu import ReadOnlyError
from mcptool.modbus.serial_line import SerialBus, SerialSettings
from mcptool.modbus.write import (
    WriteBus,
    WriteConnection,
    WriteError,
    check_write_pdu,
    masked,
    plan_write,
)
from simulators.modbus.profile import DeviceProfile, Point
from simulators.modbus.server import ModbusSimulator
from tests.modbus.test_rtu_peers import pty_pair

WRITES = [
    WRITE_SINGLE_COIL.request(0, True),
    WRITE_SINGLE_REGISTER.request(0, 1),
    WRITE_MULTIPLE_COILS.request(0, [True, False]),
    WRITE_MULTIPLE_REGISTERS.request(0, [1, 2]),
    MASK_WRITE_REGISTER.request(0, 0xFF00, 0x0012),
    READ_WRITE_REGISTERS.request(0, 1, 0, [5]),
]


def _profile() -> DeviceProfile:
    return DeviceProfile(name="w", points=[Point("holding", 0, "uint16", 7, name="r")])


def test_every_write_function_of_the_core_is_covered_here() -> None:
    writes = {code for code, entry in FUNCTIONS.items() if not entry.reads and code != 0x08}
    assert writes == {pdu[0] for pdu in WRITES}


@pytest.mark.parametrize("pdu", WRITES, ids=lambda p: f"fc{p[0]}")
async def test_the_read_only_connection_sends_no_write(pdu: bytes) -> None:
    async with ModbusSimulator(_profile()) as sim:
        host, port = sim.address
        connection = await ModbusConnection.open(host, port, connect_timeout=5)
        assert isinstance(connection, ModbusConnection)
        try:
            with pytest.raises(ReadOnlyError):
                await connection.exchange(1, pdu, timeout=5)
            await connection.exchange(1, b"\x03\x00\x00\x00\x01", timeout=5)
        finally:
            connection.close()
        assert sim.counters.total() == 1  # the read after it; the write never left
        assert sim.counters.total(function=pdu[0]) == 0


async def test_the_write_connection_sends_a_write_and_the_device_keeps_it() -> None:
    async with ModbusSimulator(_profile()) as sim:
        host, port = sim.address
        connection = await WriteConnection.open(host, port, connect_timeout=5)
        assert isinstance(connection, WriteConnection)
        try:
            reply, _ = await connection.exchange(1, WRITE_SINGLE_REGISTER.request(0, 42), timeout=5)
            back, _ = await connection.exchange(1, b"\x03\x00\x00\x00\x01", timeout=5)
        finally:
            connection.close()
    assert not isinstance(reply, type(None))
    assert getattr(back, "pdu", None) == b"\x03\x02\x00\x2a"


async def test_on_a_serial_line_only_the_write_bus_sends_a_write(tmp_path: Path) -> None:
    with pty_pair(tmp_path) as (device_end, master_end):
        line = SerialSettings(master_end, parity="N")
        device = SerialSettings(device_end, parity="N")
        async with ModbusSimulator(_profile(), serial=device) as sim:
            bus = await SerialBus.open(line)
            try:
                for pdu in WRITES:
                    with pytest.raises(ReadOnlyError):
                        await bus.exchange(1, pdu, timeout=5)
            finally:
                bus.close()
            assert sim.counters.total() == 0
            writer = await WriteBus.open(line)
            try:
                await writer.exchange(1, WRITE_SINGLE_REGISTER.request(0, 42), timeout=5)
                back, _ = await writer.exchange(1, b"\x03\x00\x00\x00\x01", timeout=5)
            finally:
                writer.close()
    assert getattr(back, "pdu", None) == b"\x03\x02\x00\x2a"


async def test_a_write_bus_and_a_read_only_bus_of_one_port_are_never_shared(
    tmp_path: Path,
) -> None:
    with pty_pair(tmp_path) as (_, master_end):
        line = SerialSettings(master_end, parity="N")
        bus, writer = await SerialBus.open(line), await WriteBus.open(line)
        try:
            assert (type(bus), type(writer)) == (SerialBus, WriteBus)
            assert await SerialBus.open(line) is bus  # read-only users share theirs
            bus.close()
        finally:
            bus.close()
            writer.close()
    assert not SerialBus._open and not WriteBus._open


@pytest.mark.parametrize(
    "pdu",
    [b"", b"\x63\x00", WRITE_SINGLE_REGISTER.request(0, 1) + b"\x00", b"\x10\x00\x00\x00\x02\x04"],
    ids=["empty", "unknown", "trailing", "short"],
)
def test_the_write_guard_refuses_what_the_core_does_not_know_or_is_not_whole(pdu: bytes) -> None:
    with pytest.raises(WriteError):
        check_write_pdu(pdu)


def test_probe_scan_identify_and_the_gateway_never_load_the_write_path() -> None:
    code = (
        "import sys, mcptool.modbus, mcptool.modbus.probe, mcptool.modbus.scan, "
        "mcptool.modbus.identify, mcptool.modbus.poller, mcptool.commands.probe, "
        "mcptool.commands.scan, mcptool.gateway, mcptool.commands.gateway;"
        "print(sorted(m for m in sys.modules if m in "
        "('mcptool.modbus.write', 'mcptool.modbus.confirmed_write', 'mcptool.modbus.client')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("address", "values", "kwargs", "function", "expected"),
    [
        ("40001", ["7"], {}, 6, (7,)),
        ("40001", ["7"], {"function": 16}, 16, (7,)),
        ("40001", ["-2"], {"type": "int16"}, 6, (0xFFFE,)),
        ("40001", ["50"], {"type": "float32"}, 16, (0x4248, 0)),
        ("40001", ["50"], {"type": "float32", "order": "CDAB"}, 16, (0, 0x4248)),
        ("40001", ["1.5"], {"scale": 0.1}, 6, (15,)),
        ("40001", ["0x10", "2"], {}, 16, (16, 2)),
        ("00001", ["1", "off", "true"], {}, 15, (True, False, True)),
        ("holding:9", ["AB"], {"type": "string"}, 6, (0x4142,)),
        ("40001", ["18446744073709551615"], {"type": "uint64"}, 16, (0xFFFF,) * 4),
    ],
)
def test_plans_choose_the_function_and_encode_the_values(
    address: str,
    values: list[str],
    kwargs: dict[str, object],
    function: int,
    expected: tuple[int, ...],
) -> None:
    plan = plan_write(parse_address(address), values, **kwargs)  # type: ignore[arg-type]
    assert (plan.function, plan.expected) == (function, expected)
    assert check_write_pdu(plan.pdu) is FUNCTIONS[function]


def test_a_mask_write_keeps_and_bits_and_sets_or_bits() -> None:
    assert masked(0x0012, 0x00F2, 0x0025) == 0x0017  # the specification's example (6.16)


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        (["nan"], {"type": "float32"}, "value 'nan' is not a finite number"),
        (["-inf"], {}, "value '-inf' is not a finite number"),
        (["18446744073709551616"], {"type": "uint64"}, "does not fit uint64"),
        (["1e39"], {"type": "float32"}, "float32 cannot hold 1e+39: nothing was sent"),
        (["0.15"], {"scale": 0.1}, "value '0.15' is not a whole uint16 after --scale 0.1"),
    ],
)
def test_values_that_cannot_be_written_are_refused_before_anything_is_built(
    values: list[str], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(WriteError) as refused:
        plan_write(parse_address("40001"), values, **kwargs)  # type: ignore[arg-type]
    assert message in str(refused.value)
