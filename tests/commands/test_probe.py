"""``mcptool probe`` as a user runs it: table, JSON Lines, CSV and exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from mcptool.cli import main
from simulators.modbus.profile import DeviceProfile, Point
from tests.modbus.peers import pymodbustcp_server, refusing_port
from tests.modbus.simulator_thread import simulator_thread


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_every_target_answering_exits_0_with_one_json_line_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pymodbustcp_server({0: [7, 8]}) as port:
        code, out, _ = run_cli(
            capsys, "probe", f"127.0.0.1:{port}", "127.0.0.1", "--port", str(port),
            "--count", "2", "--unit", "9", "--json",
        )  # fmt: skip
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [r["values"] for r in records] == [[7, 8]]  # the same target given twice
    assert records[0]["unit"] == 9
    assert records[0]["outcome"] == "ok"


def test_one_target_not_answering_exits_1_and_csv_says_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pymodbustcp_server() as good, refusing_port() as bad:
        code, out, _ = run_cli(capsys, "probe", f"127.0.0.1:{good}", f"127.0.0.1:{bad}", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 1
    assert [row["outcome"] for row in rows] == ["ok", "refused"]
    assert rows[1]["reason"].startswith("connection refused")


@pytest.mark.parametrize("function", ["5", "6", "8", "15", "16", "22", "23"])
def test_write_function_codes_are_a_usage_error(
    capsys: pytest.CaptureFixture[str], function: str
) -> None:
    code, out, err = run_cli(capsys, "probe", "127.0.0.1", "--function", function)
    assert code == 2
    assert err.startswith(f"error: function code {function} (")
    assert err.count("\n") == 1
    assert out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["127.0.0.1:99999"], "is not a port"),
        (["no-such-host.invalid"], "cannot resolve host"),
        (["127.0.0.1", "--count", "200"], "count 200 is out of range"),
        (["@/nonexistent/targets.txt"], "cannot read target file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, "probe", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_json_and_csv_together_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "probe", "127.0.0.1", "--json", "--csv")
    assert code == 2
    assert "pick one" in err


def test_the_table_shows_target_outcome_timings_and_values() -> None:
    with pymodbustcp_server({0: [4321]}) as port:
        done = subprocess.run(
            [sys.executable, "-m", "mcptool", "probe", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for text in ("target", "outcome", "conn ms", "resp ms", f"127.0.0.1:{port}", "ok", "4321"):
        assert text in done.stdout


def test_a_host_name_is_kept_next_to_the_address_it_resolved_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with refusing_port() as port:
        _, out, _ = run_cli(capsys, "probe", f"localhost:{port}", "--json")
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert record["name"] == "localhost"
    assert record["host"] in ("127.0.0.1", "::1")


def test_an_illegal_address_that_looks_modicon_gets_a_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    point = [Point("holding", 0, "uint16", 5, name="first")]
    with simulator_thread(DeviceProfile(name="flat", points=point, unmapped="zero")) as sim:
        _, _, quiet = run_cli(capsys, "probe", f"127.0.0.1:{sim.address[1]}", "-a", "40001")
    with simulator_thread(DeviceProfile(name="sparse", points=point)) as sim:
        code, _, err = run_cli(capsys, "probe", f"127.0.0.1:{sim.address[1]}", "-a", "40001")
    assert code == 0
    assert err == (
        "hint: 40001 looks like Modicon numbering (holding 0 on the wire): try -a 0, "
        "or `mcptool read TARGET 40001`\n"
    )
    assert quiet == ""  # the device answered at 40001: no hint
