"""Serial RTU and RTU over TCP against real peers: socat's pty pairs as serial lines,
mbpoll (libmodbus) as an independent RTU master, pymodbus's serial server as a second
stack, and ser2net as a real serial-to-Ethernet converter."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from mcptool.modbus.framing import FramingName
from mcptool.modbus.mbap import Answer
from mcptool.modbus.outcome import Outcome
from mcptool.modbus.pdu import ProbeRequest
from mcptool.modbus.poller import Poller, PollerHooks, PollResult
from mcptool.modbus.probe import probe
from mcptool.modbus.scan import Scanner, ScanOptions
from mcptool.modbus.serial_line import SerialBus, SerialSettings
from mcptool.modbus.targets import resolve_targets
from simulators.modbus import ModbusSimulator, load_profile, parse_profile
from tests.conftest import require_program

REGISTERS = [1234, 5678, 0, 65535]
METER = {
    "name": "meter",
    "units": [
        {
            "id": 17,
            "points": [
                {"name": f"r{i}", "table": "holding", "address": i, "type": "uint16", "value": v}
                for i, v in enumerate(REGISTERS)
            ],
        }
    ],
}


@contextmanager
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two pseudo-terminals joined by socat: what goes into one comes out of the other,
    as on a serial cable."""
    socat = require_program("socat")
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    proc = subprocess.Popen(
        [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # both ends exist once socat starts its transfer loop
            if "starting data transfer loop" in line:
                break
        else:
            pytest.fail(f"socat did not start: exit {proc.wait()}")
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait()


@asynccontextmanager
async def serial_simulator(port: str, profile: dict[str, object] = METER) -> AsyncIterator[None]:
    async with ModbusSimulator(parse_profile(profile), serial=SerialSettings(port, parity="N")):
        yield


async def test_mbpoll_reads_the_serial_simulator(tmp_path: Path) -> None:
    mbpoll = require_program("mbpoll")
    with pty_pair(tmp_path) as (device_end, master_end):
        async with serial_simulator(device_end):
            proc = await asyncio.create_subprocess_exec(
                mbpoll, "-m", "rtu", "-b", "19200", "-P", "none", "-a", "17", "-r", "1",
                "-c", "4", "-t", "4", "-1", "-o", "2", master_end,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    values = [int(v) for v in re.findall(r"^\[\d+\]:\s+(\d+)", out.decode(), re.M)]
    assert values == REGISTERS


@pytest.fixture
def pymodbus_serial_server(tmp_path: Path) -> Iterator[tuple[str, list[int]]]:
    """pymodbus's RTU server on one end of a pty pair, in its own thread and loop; with
    the values of holding registers 0-4 as the server itself reads them."""
    from pymodbus.server import ModbusSerialServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    # Registers 0-7 of unit 9 (pymodbus's simulator: what it holds is what it answers).
    device = SimDevice(
        id=9,
        simdata=[
            SimData(0, values=[4321, 8765, 1, 65534, 42, 0, 0, 0], datatype=DataType.REGISTERS)
        ],
    )
    with pty_pair(tmp_path) as (device_end, master_end):
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

        def run(coroutine: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=10)

        async def start() -> ModbusSerialServer:
            server = ModbusSerialServer(device, port=device_end, baudrate=19200, parity="N")
            await server.serve_forever(background=True)
            return server

        server = run(start())
        try:
            wanted = list(run(server.async_getValues(9, 3, 0, 5)))
            assert len(set(wanted)) > 1
            yield master_end, wanted
        finally:
            run(server.shutdown())
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()


async def test_mcptool_reads_a_pymodbus_serial_server(
    pymodbus_serial_server: tuple[str, list[int]],
) -> None:
    port, wanted = pymodbus_serial_server
    result = await probe(
        port, unit=9, address=0, count=5, serial=SerialSettings(port, parity="N"), timeout=2.0
    )
    assert result.outcome is Outcome.OK, result.reason
    assert list(result.values or ()) == wanted
    # pymodbus answers a unit it does not have with exception 0x04 (its own choice);
    # the reply is read whole, and the bus serves the next request.
    bus = await SerialBus.open(SerialSettings(port, parity="N"))
    try:
        other, _ = await bus.exchange(8, ProbeRequest(3, 0, 1).pdu, timeout=2.0)
        again, _ = await bus.exchange(9, ProbeRequest(3, 0, 5).pdu, timeout=2.0)
    finally:
        bus.close()
    assert isinstance(other, Answer) and other.exception_code == 0x04
    assert isinstance(again, Answer)
    assert again.pdu[2:] == b"".join(v.to_bytes(2, "big") for v in wanted)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def ser2net(tmp_path: Path, serial_port: str) -> Iterator[int]:
    """ser2net 4 (YAML config) passing raw bytes between a TCP port and the serial line."""
    binary = require_program("ser2net")
    port = _free_port()
    config = tmp_path / "ser2net.yaml"
    config.write_text(
        "connection: &rtu\n"
        f"  accepter: tcp,127.0.0.1,{port}\n"
        f"  connector: serialdev,{serial_port},19200n81,local\n"
        "  options:\n"
        "    kickolduser: true\n"
    )
    proc = subprocess.Popen(
        [binary, "-n", "-d", "-c", str(config), "-P", str(tmp_path / "ser2net.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while True:  # listening once a connect succeeds; it exits on a bad config
            if proc.poll() is not None:
                assert proc.stderr is not None
                pytest.fail(f"ser2net exited {proc.returncode}: {proc.stderr.read()!r}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
        yield port
    finally:
        proc.terminate()
        proc.wait()


async def test_probe_through_ser2net_names_rtu_over_tcp_and_reads_with_it(
    tmp_path: Path,
) -> None:
    with pty_pair(tmp_path) as (device_end, converter_end):
        async with serial_simulator(device_end):
            with ser2net(tmp_path, converter_end) as port:
                wrong = await probe("127.0.0.1", port, unit=17, count=4, timeout=0.5)
                right = await probe(
                    "127.0.0.1", port, unit=17, count=4, framing=FramingName.RTU, timeout=2.0
                )
    assert wrong.outcome is Outcome.TIMEOUT
    assert "speaks RTU over TCP" in wrong.reason and "--framing rtu" in wrong.reason
    assert right.outcome is Outcome.OK and list(right.values or ()) == REGISTERS
    assert right.target == f"rtu-tcp://127.0.0.1:{port}"


async def test_a_unit_sweep_on_a_bus_finds_the_live_units_among_silent_ones(
    tmp_path: Path,
) -> None:
    with pty_pair(tmp_path) as (device_end, master_end):
        async with ModbusSimulator(
            load_profile("gateway"), serial=SerialSettings(device_end, parity="N")
        ):
            targets = await resolve_targets(
                [f"rtu://{master_end}?parity=N"], serial=SerialSettings("-")
            )
            scanner = Scanner(targets, ScanOptions(units=list(range(1, 13)), timeout=0.1))
            results = [r async for r in scanner.results()]
    answered = sorted(r.unit for r in results if r.answered)
    silent = [r for r in results if not r.answered]
    assert answered == [1, 2, 10]  # the gateway profile's devices, now on one bus
    assert len(silent) == 9 and {r.outcome for r in silent} == {Outcome.TIMEOUT}
    assert scanner.summary.connections == 1  # one bus, opened once for the sweep
    assert {r.target for r in results} == {master_end}


POINTS = [{"name": "v", "table": "holding", "address": 0, "type": "uint16"}]


async def test_the_gateway_polls_two_devices_on_one_serial_bus(tmp_path: Path) -> None:
    # Two devices of the gateway's config on one serial line: units 1 and 2, one bus.
    from mcptool.gateway.config import parse_config

    with pty_pair(tmp_path) as (device_end, master_end):
        async with ModbusSimulator(
            load_profile("gateway"), serial=SerialSettings(device_end, parity="N")
        ):
            config = parse_config(
                {
                    "defaults": {"parity": "N", "interval": 0.05, "timeout": 0.5},
                    "devices": [
                        {"name": f"d{unit}", "host": master_end, "unit": unit, "points": POINTS}
                        for unit in (1, 2)
                    ],
                    "jsonl": {"path": str(tmp_path / "out.jsonl")},
                }
            )
            specs = config.devices
            assert {(s.host, s.port, s.framing) for s in specs} == {(master_end, 0, "rtu")}
            seen: dict[str, asyncio.Future[PollResult]] = {
                s.name: asyncio.get_running_loop().create_future() for s in specs
            }

            class Hooks(PollerHooks):
                def on_result(self, result: PollResult) -> None:
                    if not seen[result.device].done() and result.values[0] is not None:
                        seen[result.device].set_result(result)

            poller = Poller(specs, Hooks())
            assert len(poller.connections) == 1  # one bus for both units
            async with poller:
                results = await asyncio.wait_for(asyncio.gather(*seen.values()), 10)
    assert all(r.values[0] is not None for r in results)


def test_a_gateway_config_refuses_a_serial_setting_that_is_not_one(tmp_path: Path) -> None:
    from mcptool.gateway.config import parse_config
    from mcptool.problems import ConfigError

    def device(**settings: object) -> dict[str, object]:
        return {
            "devices": [{"name": "d", "points": [{"name": "v", "address": 0}], **settings}],
            "jsonl": {"path": str(tmp_path / "out.jsonl")},
        }

    with pytest.raises(ConfigError) as bad_parity:
        parse_config(device(host="/dev/ttyUSB0", parity="X"))
    assert "devices[0].parity" in str(bad_parity.value)
    with pytest.raises(ConfigError) as bad_url:
        parse_config(device(host="rtu:///dev/ttyUSB0?baud=9600"))
    assert "devices[0].host" in str(bad_url.value) and "baudrate" in str(bad_url.value)
    converter = parse_config(device(host="rtu-tcp://127.0.0.1:4001")).devices[0]
    assert (converter.host, converter.port, converter.framing) == ("127.0.0.1", 4001, "rtu")
    line = parse_config(device(host="/dev/ttyUSB0", baudrate=9600, parity="N")).devices[0]
    assert line.serial == SerialSettings("/dev/ttyUSB0", 9600, "N", 1)


@pytest.mark.parametrize(
    "options", [["--serial", "pty", "--parity", "N"], ["--framing", "rtu", "--port", "0"]]
)
async def test_the_simulate_command_serves_rtu_on_a_pty_it_prints_and_over_tcp(
    options: list[str],
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcptool.cli", "simulate", "modbus", "--profile", "boiler",
        "--json", "--duration", "60", *options,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        if "serial" in line:
            assert line["line"] == "19200 8N1"
            target = f"rtu://{line['serial']}?parity=N"
        else:
            assert line["framing"] == "rtu"
            target = f"rtu-tcp://{line['host']}:{line['port']}"
        (where,) = await resolve_targets([target])
        result = await probe(
            where.address, where.port, framing=where.framing, serial=where.serial, timeout=2.0
        )
    finally:
        proc.terminate()
        await proc.wait()
    assert result.outcome is Outcome.OK and result.values


async def test_a_corrupt_reply_over_rtu_breaks_the_crc_and_the_client_says_what_it_heard() -> None:
    from simulators.modbus import Fault

    fault = Fault(kind="corrupt", field="length")
    async with ModbusSimulator(load_profile("boiler"), framing="rtu", faults=[fault]) as sim:
        host, port = sim.address
        result = await probe(host, port, framing=FramingName.RTU, timeout=0.3)
    assert result.outcome is Outcome.TIMEOUT
    assert "heard 1 frame(s) with a bad CRC" in result.reason


async def test_one_request_at_a_time_on_a_bus_whoever_sends_it(tmp_path: Path) -> None:
    # Two users of one port send at once (the gateway's devices, a scan's lanes): each
    # gets its own unit's reply, because the second request waits for the first reply.
    with pty_pair(tmp_path) as (device_end, master_end):
        async with ModbusSimulator(
            load_profile("gateway"), serial=SerialSettings(device_end, parity="N")
        ):
            settings = SerialSettings(master_end, parity="N")
            first, second = await SerialBus.open(settings), await SerialBus.open(settings)
            assert first is second  # one bus, shared
            pdu = ProbeRequest(3, 0, 1).pdu
            try:
                replies = await asyncio.gather(
                    *(first.exchange(unit, pdu, timeout=2.0) for unit in (1, 2, 10, 1, 2))
                )
            finally:
                first.close()
                second.close()
    assert all(isinstance(reply, Answer) for reply, _ in replies), replies
