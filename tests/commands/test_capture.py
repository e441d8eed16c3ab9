"""``mcptool capture``: a bundled profile served, captured, served again: the same reads."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mcptool.cli import main
from mcptool.modbus.capture import Capture, TableRange, parse_range, profile_toml
from mcptool.modbus.registermap import Table
from simulators.modbus.profile import DeviceProfile, Point, load_profile, parse_profile
from tests.modbus.simulator_thread import simulator_thread

# (address, type, order, count) of every point of power_meter, read as a user would.
READS = [
    ("40001", "uint32", "CDAB", "3"),
    ("40007", "int32", "CDAB", "1"),
    ("40009", "float32", "CDAB", "2"),
    ("30001", "uint64", "CDAB", "1"),
    ("30005", "string", "ABCD", "1"),
    ("40013", "uint16", "ABCD", "1"),  # not on the device: an exception on both
]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out, err


def _reads(capsys: pytest.CaptureFixture[str], port: int) -> list[object]:
    found: list[object] = []
    for address, type_, order, count in READS:
        extra = ["--length", "8"] if type_ == "string" else []
        _, out, _ = run_cli(
            capsys, "read", f"127.0.0.1:{port}", address, "-t", type_, "-o", order,
            "-c", count, *extra, "--json",
        )  # fmt: skip
        record = json.loads(out)
        found.append(record["values"] or record["error"])
    return found


def test_a_captured_profile_serves_the_same_values_and_identity(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    captured = tmp_path / "captured.toml"
    # A frozen clock: the counters, sine and random walk hold still while we compare.
    with simulator_thread(load_profile("power_meter"), clock=lambda: 1000.0) as original:
        port = original.address[1]
        code, _, err = run_cli(capsys, "capture", f"127.0.0.1:{port}", "-o", str(captured))
        assert code == 0
        assert err.startswith(f"{captured}: 24 addresses of unit 1 at 127.0.0.1:{port}")
        before = _reads(capsys, port)
    with simulator_thread(load_profile(str(captured))) as replica:
        after = _reads(capsys, replica.address[1])
    assert after == before
    assert before[-1] == "exception 0x02: illegal data address"
    profile = load_profile(str(captured))
    assert (profile.identity.vendor_name, profile.identity.model_name) == ("Voltex", "PM-3000-TCP")


def test_a_capture_over_rtu_over_tcp_replays_what_the_device_serves(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    captured = tmp_path / "converter.toml"
    with simulator_thread(
        load_profile("power_meter"), clock=lambda: 1000.0, framing="rtu"
    ) as behind_converter:
        target = f"rtu-tcp://127.0.0.1:{behind_converter.address[1]}"
        code, _, err = run_cli(capsys, "capture", target, "-o", str(captured))
    assert code == 0
    assert err.startswith(f"{captured}: 24 addresses of unit 1 at {target}")
    with simulator_thread(load_profile("power_meter"), clock=lambda: 1000.0) as original:
        expected = _reads(capsys, original.address[1])
    with simulator_thread(load_profile(str(captured))) as replica:
        assert _reads(capsys, replica.address[1]) == expected
    assert load_profile(str(captured)).identity.model_name == "PM-3000-TCP"


def test_report_server_id_is_captured_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    captured = tmp_path / "boiler.toml"
    with simulator_thread(load_profile("boiler"), clock=lambda: 0.0) as original:
        run_cli(capsys, "capture", f"127.0.0.1:{original.address[1]}", "-o", str(captured))
    server_id = load_profile(str(captured)).server_id
    assert (server_id.id, server_id.running, server_id.additional) == (b"\x42", True, b"BX-200")


def test_a_recorded_series_replays_one_value_per_interval() -> None:
    capture = Capture(1, interval=0.5)
    for value in (10, 11, 12):
        capture.add(Table.HOLDING, 4, value)
    capture.add(Table.COIL, 0, True)
    text = profile_toml(capture, "rec", "127.0.0.1:502")
    profile = parse_profile(tomllib.loads(text), "rec.toml")
    holding = next(p for p in profile.points if p.table == "holding")
    generator = holding.generator
    assert [generator(t) for t in (0.0, 0.5, 1.0, 1.5)] == [10, 11, 12, 10]
    assert next(p for p in profile.points if p.table == "coil").generator(0.0) is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("holding:0-199", TableRange(Table.HOLDING, 0, 199)),
        ("coils:5", TableRange(Table.COIL, 5, 5)),
        ("input_registers:10-10", TableRange(Table.INPUT, 10, 10)),
    ],
)
def test_ranges_name_a_table_and_0_based_addresses(text: str, expected: TableRange) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-r", "40001-40010"], "error: range '40001-40010': write TABLE:FIRST-LAST"),
        (["-r", "holding:9-3"], "error: range 'holding:9-3': addresses run 0-65535"),
        (["--duration", "1", "--interval", "2"], "error: --interval 2.0 is longer than"),
        (["--unit", "300"], "error: "),
    ],
)
def test_bad_captures_are_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, "capture", "127.0.0.1:1", *args)
    assert code == 2
    assert out == ""
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_a_recording_keeps_every_sample_in_order_and_replays_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ticks = itertools.count()  # the device's clock moves one second each time it is read
    profile = DeviceProfile(
        name="counting",
        points=[Point("holding", 0, "uint16", {"kind": "ramp", "start": 0, "rate": 1})],
    )
    captured = tmp_path / "recorded.toml"
    with simulator_thread(profile, clock=lambda: float(next(ticks))) as sim:
        code, _, _ = run_cli(
            capsys, "capture", f"127.0.0.1:{sim.address[1]}", "-r", "holding:0-3",
            "--duration", "0.3", "--interval", "0.1", "-o", str(captured),
        )  # fmt: skip
    assert code == 0
    point = load_profile(str(captured)).points[0]
    series = [point.generator(0.1 * i + 0.01) for i in range(4)]
    # the discovery read (the clock's first reading since start), then three samples
    assert series == [1, 2, 3, 4]
    assert point.generator(0.41) == series[0]  # a recorded series repeats


def test_the_captured_file_runs_under_simulate_modbus_as_a_user_starts_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    captured = tmp_path / "captured.toml"
    with simulator_thread(load_profile("power_meter"), clock=lambda: 1000.0) as original:
        port = original.address[1]
        run_cli(capsys, "capture", f"127.0.0.1:{port}", "-o", str(captured))
        before = _reads(capsys, port)
    replica = subprocess.Popen(
        [sys.executable, "-m", "mcptool", "simulate", "modbus", "--profile", str(captured),
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert replica.stdout is not None
        first = replica.stdout.readline()  # "captured: listening on 127.0.0.1:PORT (units 1)"
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", first)
        assert found, first
        after = _reads(capsys, int(found.group(1)))
    finally:
        replica.terminate()
        replica.wait(timeout=30)
    assert after == before
