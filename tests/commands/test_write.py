"""``mcptool write`` as a user runs it, against the simulator and pyModbusTCP's server."""

from __future__ import annotations

import asyncio
import json
import math
import os
import pty
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pyModbusTCP.client import ModbusClient

from mcptool.cli import main
from mcptool.modbus.serial_line import SerialSettings
from simulators.modbus.profile import DeviceProfile, Point
from tests.modbus.peers import pymodbustcp_server
from tests.modbus.simulator_thread import simulator_thread
from tests.modbus.test_rtu_peers import pty_pair


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out, err


def _device() -> DeviceProfile:
    return DeviceProfile(
        name="rw",
        points=[
            Point("holding", 0, "float32", 21.5, name="setpoint"),
            Point("holding", 2, "uint16", 7, name="mode"),
            Point("holding", 3, "uint16", 0, name="spare"),
            Point("coil", 0, value=False, name="pump"),
            Point("input", 0, "uint16", 3, name="status"),
        ],
    )


def _holding(port: int, address: int, count: int) -> list[int]:
    """What an independent client (pyModbusTCP) reads from the device."""
    client = ModbusClient(host="127.0.0.1", port=port, auto_open=True, timeout=5)
    try:
        values = client.read_holding_registers(address, count)
    finally:
        client.close()
    assert values is not None
    return list(values)


def test_without_yes_and_no_terminal_nothing_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    with simulator_thread(_device()) as sim:
        port = sim.address[1]
        code, out, err = run_cli(
            capsys, "write", f"127.0.0.1:{port}", "40001", "30", "-t", "float32"
        )
        assert sim.counters.total() == 0
        assert sim.counters.connections == 0
        assert _holding(port, 0, 2) == [0x41AC, 0]  # 21.5 as float32 ABCD
    assert code == 2
    assert out == ""
    assert err.startswith("error: refusing to write 40001 on 127.0.0.1:")
    assert "--yes" in err and err.count("\n") == 1


def test_with_yes_the_registers_change_and_the_read_back_confirms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with simulator_thread(_device()) as sim:
        port = sim.address[1]
        code, out, _ = run_cli(
            capsys, "write", f"127.0.0.1:{port}", "40001", "30.25", "-t", "float32", "--yes"
        )
        assert _holding(port, 0, 2) == [0x41F2, 0]  # 30.25 as float32 ABCD
        assert sim.counters.total(function=16) == 1
    assert code == 0
    assert out == (
        f"write 127.0.0.1:{port} unit 1 40001 (holding 0) fc 16 float32 ABCD: "
        "old 21.5 -> new 30.25: confirmed\n"
    )


def _read_float(capsys: pytest.CaptureFixture[str], *target: str) -> float:
    code, out, _ = run_cli(capsys, "read", *target, "40001", "-t", "float32", "--json")
    assert code == 0
    value = json.loads(out)["values"][0]["value"]
    assert isinstance(value, float)
    return value


def test_a_serial_line_without_yes_sends_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with (
        pty_pair(tmp_path) as (device_end, master_end),
        simulator_thread(_device(), serial=SerialSettings(device_end, parity="N")) as sim,
    ):
        code, out, err = run_cli(
            capsys, "write", master_end, "40001", "30", "-t", "float32", "--parity", "N"
        )
        assert sim.counters.total() == 0
        assert _read_float(capsys, master_end, "--parity", "N") == 21.5
    assert (code, out) == (2, "")
    assert err.startswith(f"error: refusing to write 40001 on {master_end} unit 1 without --yes")


def test_with_yes_a_serial_line_writes_and_the_read_back_confirms(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with (
        pty_pair(tmp_path) as (device_end, master_end),
        simulator_thread(_device(), serial=SerialSettings(device_end, parity="N")) as sim,
    ):
        target = f"rtu://{master_end}?parity=N"
        code, out, _ = run_cli(capsys, "write", target, "40001", "30.25", "-t", "float32", "-y")
        assert sim.counters.total(function=16) == 1
        assert _read_float(capsys, target) == 30.25
    assert code == 0
    assert out == (
        f"write {master_end} unit 1 40001 (holding 0) fc 16 float32 ABCD: "
        "old 21.5 -> new 30.25: confirmed\n"
    )


def test_with_yes_rtu_over_tcp_writes_and_the_read_back_confirms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with simulator_thread(_device(), framing="rtu") as sim:
        target = f"rtu-tcp://127.0.0.1:{sim.address[1]}"
        code, out, _ = run_cli(capsys, "write", target, "holding:2", "9", "-y", "--json")
        assert sim.counters.total(function=6) == 1
    record = json.loads(out)
    assert code == 0
    assert (record["target"], record["old"], record["read_back"]) == (target, [7], [9])
    assert record["confirmed"] is True


def test_one_register_goes_as_function_6_and_json_carries_old_and_new(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with simulator_thread(_device()) as sim:
        port = sim.address[1]
        code, out, _ = run_cli(
            capsys, "write", f"127.0.0.1:{port}", "holding:2", "9", "-y", "--json"
        )
        assert sim.counters.total(function=6) == 1
        assert _holding(port, 2, 1) == [9]
    record = json.loads(out)
    assert code == 0
    assert (record["function"], record["old"], record["new"], record["read_back"]) == (
        6,
        [7],
        [9],
        [9],
    )
    assert record["confirmed"] is True


def test_each_write_appends_its_record_to_the_audit_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    trail = tmp_path / "writes.jsonl"
    with simulator_thread(_device()) as sim:
        target = f"127.0.0.1:{sim.address[1]}"
        for value in ("8", "9"):
            run_cli(capsys, "write", target, "40003", value, "-y", "--audit", str(trail))
    records = [json.loads(line) for line in trail.read_text().splitlines()]
    assert [(r["old"], r["new"], r["confirmed"]) for r in records] == [
        ([7], [8], True),
        ([8], [9], True),
    ]
    assert {r["target"] for r in records} == {target}


def test_json_shows_a_nan_it_overwrote_as_null(capsys: pytest.CaptureFixture[str]) -> None:
    profile = DeviceProfile(name="nan", points=[Point("holding", 0, "float32", math.nan)])
    with simulator_thread(profile) as sim:
        _, out, _ = run_cli(
            capsys, "write", f"127.0.0.1:{sim.address[1]}", "40001", "1.5", "-t", "float32",
            "-y", "--json",
        )  # fmt: skip
    assert "NaN" not in out
    record = json.loads(out)
    assert (record["old"], record["old_raw"], record["new"]) == ([None], [0x7FC0, 0], [1.5])


def test_coils_take_on_and_off_through_functions_5_and_15(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with simulator_thread(_device()) as sim:
        port = sim.address[1]
        code, out, _ = run_cli(capsys, "write", f"127.0.0.1:{port}", "00001", "on", "-y")
        assert sim.counters.total(function=5) == 1
        client = ModbusClient(host="127.0.0.1", port=port, auto_open=True, timeout=5)
        assert client.read_coils(0, 1) == [True]
        client.close()
    assert code == 0
    assert out.endswith("(coil 0) fc 5: old False -> new True: confirmed\n")


def _on_a_terminal(port: int, answer: str) -> tuple[int, str]:
    """``mcptool write`` on a pseudo-terminal, answering its prompt with ``answer``."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "mcptool", "write", f"127.0.0.1:{port}", "40003", "9"],
        stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    seen = b""
    answered = False
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        assert ready, f"no output from write within 30 s: {seen!r}"
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if not answered and b"[y/N]" in seen:
            os.write(leader, answer.encode() + b"\n")
            answered = True
    os.close(leader)
    return process.wait(timeout=30), seen.decode()


def test_on_a_terminal_write_asks_with_the_current_value_and_yes_writes() -> None:
    with simulator_thread(_device()) as sim:
        code, shown = _on_a_terminal(sim.address[1], "y")
        assert _holding(sim.address[1], 2, 1) == [9]
    assert "unit 1: 40003 now 7, write fc 6? [y/N]" in shown
    assert shown.rstrip().endswith("old 7 -> new 9: confirmed")
    assert code == 0


def test_on_a_terminal_anything_but_yes_writes_nothing() -> None:
    with simulator_thread(_device()) as sim:
        code, shown = _on_a_terminal(sim.address[1], "n")
        assert sim.counters.total(function=6) == 0
        assert _holding(sim.address[1], 2, 1) == [7]
    assert "error: not confirmed: nothing was written" in shown
    assert code == 2


def test_a_device_refusing_the_write_exits_1_with_its_exception(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with simulator_thread(_device()) as sim:
        port = sim.address[1]
        code, out, _ = run_cli(capsys, "write", f"127.0.0.1:{port}", "40101", "1", "-y")
    assert code == 1
    assert out.endswith("old ? -> new 1: failed: exception 0x02: illegal data address\n")


def test_function_23_writes_and_reads_back_in_one_request_on_an_independent_stack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pymodbustcp_server({0: [1, 2, 3]}) as port:
        code, out, _ = run_cli(
            capsys, "write", f"127.0.0.1:{port}", "40002", "20", "30", "-f", "23", "-y"
        )
        assert _holding(port, 0, 3) == [1, 20, 30]
    assert code == 0
    assert out.endswith("fc 23 uint16 ABCD: old 2 3 -> new 20 30: confirmed\n")


@contextmanager
def pymodbus_server(holding: list[int]) -> Iterator[int]:
    """pymodbus's own TCP server (a second independent stack; it answers 22 and 23)."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    bits = [SimData(0, count=8, values=False, datatype=DataType.BITS)]
    device = SimDevice(
        id=1,
        simdata=(
            bits,
            bits,
            [SimData(0, values=holding, datatype=DataType.REGISTERS)],
            [SimData(0, values=[0], datatype=DataType.REGISTERS)],
        ),
    )
    with socket.socket() as probe:  # pymodbus cannot report an ephemeral port: pick one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> ModbusTcpServer:  # pymodbus binds its transport to the running loop
        server = ModbusTcpServer(device, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_mask_write_is_confirmed_against_the_masks_on_pymodbus(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pymodbus_server([0x0012, 5, 6]) as port:
        code, out, _ = run_cli(
            capsys, "write", f"127.0.0.1:{port}", "40001", "0x00F2", "0x0025", "-f", "22", "-y"
        )
        after = _holding(port, 0, 1)
    assert after == [0x0017]  # the specification's example (6.16)
    assert code == 0
    assert out.endswith("fc 22 uint16 ABCD: old 18 -> new 23: confirmed\n")


def test_functions_22_and_23_on_the_simulator_match_what_pymodbus_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with simulator_thread(_device()) as sim:
        port = sim.address[1]
        code22, out22, _ = run_cli(
            capsys, "write", f"127.0.0.1:{port}", "40003", "0x00F0", "0x000F", "-f", "22", "-y"
        )
        code23, out23, _ = run_cli(
            capsys, "write", f"127.0.0.1:{port}", "40004", "9", "-f", "23", "-y"
        )
        assert sim.counters.total(function=22) == 1
        assert sim.counters.total(function=23) == 1
        assert _holding(port, 2, 2) == [0x000F, 9]  # (7 AND 0xF0) OR (0x0F AND NOT 0xF0)
    assert (code22, code23) == (0, 0)
    assert out22.endswith("fc 22 uint16 ABCD: old 7 -> new 15: confirmed\n")
    assert out23.endswith("fc 23 uint16 ABCD: old 0 -> new 9: confirmed\n")


def test_function_23_on_pymodbus_too(capsys: pytest.CaptureFixture[str]) -> None:
    with pymodbus_server([0x0012, 5, 6]) as port:
        code, out, _ = run_cli(
            capsys, "write", f"127.0.0.1:{port}", "40002", "7", "8", "-f", "23", "-y"
        )
        after = _holding(port, 0, 3)
    assert after == [0x0012, 7, 8]
    assert code == 0
    assert out.endswith("fc 23 uint16 ABCD: old 5 6 -> new 7 8: confirmed\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["30001", "1"], "error: 30001 is in the input table, which no Modbus function writes"),
        (["40001", "1.5"], "error: value '1.5' is not a whole uint16"),
        (["40001", "70000"], "error: value '70000' does not fit uint16"),
        (["00001", "maybe"], "error: coil value 'maybe' is not 0/1"),
        (["40001", "1", "-f", "5"], "error: function 5 writes coils"),
        (["40001", "1", "2", "-f", "6"], "error: function 6 writes one register; 2 given"),
        (["40001", "1", "-f", "22"], "error: function 22 takes two values"),
        (["4x1", "1"], "error: address '4x1': not a number"),
    ],
)
def test_bad_writes_are_one_line_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, "write", "127.0.0.1:1", *args, "--yes")
    assert code == 2
    assert out == ""
    assert err.startswith(message)
    assert err.count("\n") == 1
