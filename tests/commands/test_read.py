"""``mcptool read`` as a user runs it; mbpoll, reading the same registers, is the referee."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mcptool.cli import main
from mcptool.modbus.serial_line import SerialSettings
from simulators.modbus.profile import DeviceProfile, Point
from tests.modbus.peers import refusing_port
from tests.modbus.simulator_thread import simulator_thread
from tests.modbus.test_rtu_peers import pty_pair

needs_mbpoll = pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out, err


def _meter() -> DeviceProfile:
    return DeviceProfile(
        name="meter",
        points=[
            Point("holding", 0, "float32", 230.125, name="voltage_abcd"),
            Point("holding", 2, "float32", -17.75, name="current_abcd"),
            Point("holding", 4, "float32", 49.98, order="CDAB", name="frequency_cdab"),
            Point("holding", 6, "float32", 1234.5, order="CDAB", name="power_cdab"),
            Point("holding", 8, "int32", -100_000, order="CDAB", name="energy_cdab"),
            Point("holding", 10, "int16", -5, name="status"),
            Point("input", 0, "float32", 21.5, order="CDAB", name="temperature"),
            Point("coil", 0, value=True, name="pump"),
            Point("coil", 1, value=False, name="fan"),
            Point("coil", 2, value=True, name="valve"),
            Point("discrete", 0, value=True, name="door"),
        ],
    )


def _mbpoll(port: int, *args: str) -> list[str]:
    """mbpoll's values, as it prints them (``[1]: \t230.125``), 1-based reference."""
    out = subprocess.run(
        ["mbpoll", "-m", "tcp", "-p", str(port), "-a", "1", "-1", "-q", *args, "127.0.0.1"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    return re.findall(r"^\[\d+\]:\s+(\S+)", out, re.MULTILINE)


def _ours(capsys: pytest.CaptureFixture[str], port: int, *args: str) -> list[object]:
    code, out, _ = run_cli(capsys, "read", f"127.0.0.1:{port}", *args, "--json")
    assert code == 0
    return [v["value"] for v in json.loads(out)["values"]]


@needs_mbpoll
@pytest.mark.parametrize(
    ("mbpoll_args", "our_args"),
    [
        (["-t", "4:float", "-B", "-r", "1", "-c", "2"], ["40001", "-t", "float32", "-c", "2"]),
        (
            ["-t", "4:float", "-r", "5", "-c", "2"],
            ["40005", "-t", "float32", "-o", "CDAB", "-c", "2"],
        ),
        (["-t", "4:int", "-r", "9"], ["40009", "-t", "int32", "-o", "CDAB"]),
        (["-t", "4", "-r", "11"], ["40011", "-t", "uint16"]),
        (["-t", "3:float", "-r", "1"], ["30001", "-t", "float32", "-o", "CDAB"]),
        (["-t", "0", "-r", "1", "-c", "3"], ["00001", "-c", "3"]),
        (["-t", "1", "-r", "1"], ["10001"]),
        (["-t", "4:hex", "-r", "1", "-c", "4"], ["holding:1", "--base", "1", "-c", "4"]),
    ],
    ids=[
        "float-ABCD",
        "float-CDAB",
        "int32-CDAB",
        "uint16",
        "input-float",
        "coils",
        "discrete",
        "raw-base-1",
    ],
)
def test_values_equal_what_mbpoll_reads_from_the_same_registers(
    capsys: pytest.CaptureFixture[str], mbpoll_args: list[str], our_args: list[str]
) -> None:
    with simulator_thread(_meter()) as sim:
        port = sim.address[1]
        theirs = _mbpoll(port, *mbpoll_args)
        ours = _ours(capsys, port, *our_args)
    assert len(theirs) == len(ours) > 0
    for their, our in zip(theirs, ours, strict=True):
        if their.startswith("0x"):
            assert int(their, 16) == our
        elif isinstance(our, bool):
            assert int(their) == int(our)
        else:
            assert float(their) == pytest.approx(our, rel=1e-6)


def test_a_table_shows_each_value_at_its_modicon_address(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with simulator_thread(_meter()) as sim:
        code, out, _ = run_cli(
            capsys, "read", f"127.0.0.1:{sim.address[1]}", "40005", "-t", "float32",
            "-o", "CDAB", "-c", "2", "--scale", "2",
        )  # fmt: skip
    assert code == 0
    assert out == "40005  99.96\n40007  2469\n"


def test_polling_gives_one_csv_row_per_sample_and_statistics_at_the_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with simulator_thread(_meter()) as sim:
        code, out, err = run_cli(
            capsys, "read", f"127.0.0.1:{sim.address[1]}", "30001", "-t", "float32",
            "-o", "CDAB", "--interval", "0.01", "--samples", "3", "--csv",
        )  # fmt: skip
        assert sim.counters.total(function=4) == 3
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0
    assert [row["30001"] for row in rows] == ["21.5"] * 3
    assert all(float(row["response_ms"]) > 0 for row in rows)
    assert re.fullmatch(
        r"3 reads, 0 failed; response ms min [\d.]+ mean [\d.]+ p95 [\d.]+ max [\d.]+\n", err
    )


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run the CLI with its stdout on a pseudo-terminal, as in a user's shell."""
    parent, child = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "LINES": "40", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcptool", *args],
        stdout=child, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(parent, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(parent)
    return proc.wait(timeout=30), b"".join(chunks).decode(errors="replace")


def test_polling_on_a_terminal_redraws_one_table_with_min_max_and_changes() -> None:
    profile = DeviceProfile(
        name="ramp", points=[Point("holding", 0, "uint16", {"kind": "counter", "rate": 1000})]
    )
    with simulator_thread(profile) as sim:
        code, out = _on_a_terminal(
            "read", f"127.0.0.1:{sim.address[1]}", "40001", "--interval", "0.02", "--samples", "6"
        )
    assert code == 0
    # One table, redrawn: the cursor goes back up over it, and the title is drawn each
    # time, but no row-per-read header ("time ... ms") is printed.
    assert "\x1b[1A" in out or "\x1b[2K" in out
    assert out.count("unit 1 uint16 ABCD") >= 2
    assert not re.search(r"^time\s", out, re.MULTILINE)
    final = out[out.rindex("unit 1 uint16 ABCD") :]
    row = re.search(r"40001\D+(\d+)\D+(\d+)\D+(\d+)\D+(\d+)", final)
    assert row is not None, final
    value, low, high, changes = map(int, row.groups())
    assert low < high and low <= value <= high and changes >= 1
    assert "6 reads, 0 failed" in final


def test_rows_keeps_a_row_per_read_on_a_terminal() -> None:
    with simulator_thread(_meter()) as sim:
        code, out = _on_a_terminal(
            "read", f"127.0.0.1:{sim.address[1]}", "40011", "-t", "int16",
            "--interval", "0.01", "--samples", "3", "--rows",
        )  # fmt: skip
    assert code == 0
    assert re.search(r"^time\s+40011\s+ms", out, re.MULTILINE)
    assert len(re.findall(r"^\d\d:\d\d:\d\d\.\d+\s+-5\s", out, re.MULTILINE)) == 3


def test_a_nan_in_a_register_is_null_in_json_with_its_registers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    profile = DeviceProfile(name="nan", points=[Point("holding", 0, "float32", math.nan)])
    with simulator_thread(profile) as sim:
        code, out, _ = run_cli(
            capsys, "read", f"127.0.0.1:{sim.address[1]}", "40001", "-t", "float32", "--json"
        )
    record = json.loads(out)  # strict JSON: NaN would not parse in most languages
    assert code == 0
    assert record["values"][0]["value"] is None
    assert record["raw"] == [0x7FC0, 0]
    assert "NaN" not in out


@pytest.mark.parametrize("target", ["rtu-tcp://127.0.0.1:{port}", "127.0.0.1:{port} --framing rtu"])
def test_rtu_over_tcp_reads_the_same_values_as_modbus_tcp(
    capsys: pytest.CaptureFixture[str], target: str
) -> None:
    with simulator_thread(_meter(), framing="rtu") as sim:
        port = sim.address[1]
        code, out, _ = run_cli(
            capsys, "read", *target.format(port=port).split(), "40001", "-t", "float32",
            "-c", "2", "--json",
        )  # fmt: skip
        assert sim.counters.total(function=3) == 1
    record = json.loads(out)
    assert code == 0
    assert [v["value"] for v in record["values"]] == [230.125, -17.75]
    assert record["target"] == f"rtu-tcp://127.0.0.1:{port}"


def test_a_serial_line_reads_typed_values_with_the_line_settings_given(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with (
        pty_pair(tmp_path) as (device_end, master_end),
        simulator_thread(_meter(), serial=SerialSettings(device_end, 9600, "N")),
    ):
        code, out, _ = run_cli(
            capsys, "read", master_end, "40005", "-t", "float32", "-o", "CDAB", "-c", "2",
            "--baudrate", "9600", "--parity", "N", "--json",
        )  # fmt: skip
        code_url, out_url, _ = run_cli(
            capsys, "read", f"rtu://{master_end}?baudrate=9600&parity=N", "30001",
            "-t", "float32", "-o", "CDAB", "--json",
        )  # fmt: skip
    record = json.loads(out)
    assert (code, code_url) == (0, 0)
    assert [v["value"] for v in record["values"]] == pytest.approx([49.98, 1234.5])
    assert record["target"] == master_end
    assert [v["value"] for v in json.loads(out_url)["values"]] == [21.5]


def test_a_poll_of_a_device_that_is_away_keeps_going_and_counts_the_failures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with refusing_port() as port:
        code, out, err = run_cli(
            capsys, "read", f"127.0.0.1:{port}", "40001", "-i", "0.01", "-n", "3", "--csv"
        )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 1
    assert len(rows) == 3
    assert all(row["error"].startswith(f"127.0.0.1:{port}: refused") for row in rows)
    assert err == "3 reads, all failed\n"


def test_one_read_of_a_device_that_is_away_is_one_line_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with refusing_port() as port:
        code, out, err = run_cli(capsys, "read", f"127.0.0.1:{port}", "40001")
    assert (code, out) == (1, "")
    assert err.startswith(f"error: 127.0.0.1:{port}: refused: connection refused")
    assert err.count("\n") == 1


def test_an_address_the_device_lacks_exits_1_with_its_exception(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with simulator_thread(_meter()) as sim:
        code, out, _ = run_cli(capsys, "read", f"127.0.0.1:{sim.address[1]}", "40101")
    assert code == 1
    assert out == "40101: exception 0x02: illegal data address\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["40001", "-t", "string"], "error: --type string needs --length N"),
        (["00001", "-t", "float32"], "error: 00001: coils and discrete inputs are bits"),
        (["40001", "-t", "float32", "-c", "63"], "error: 63 x float32 is 126 registers"),
        (["465536", "-t", "float32"], "error: 2 from 465536 run past address 65535"),
        (["40001", "--samples", "3"], "error: --samples needs --interval"),
        (["40001", "--scale", "0"], "error: --scale 0.0 must be a finite number other than 0"),
    ],
)
def test_bad_reads_are_one_line_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, "read", "127.0.0.1:1", *args)
    assert code == 2
    assert out == ""
    assert err.startswith(message)
    assert err.count("\n") == 1
