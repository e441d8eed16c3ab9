"""``mcptool scan`` as a user runs it: sweeps, files, identification, summary."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pyModbusTCP.server import DeviceIdentification

from mcptool.cli import main
from simulators.modbus.profile import load_profile
from tests.modbus.peers import pymodbustcp_server, refusing_port
from tests.modbus.simulator_thread import simulator_thread


@contextmanager
def silent_server() -> Iterator[int]:
    """A listener that completes connections and never answers (the kernel's backlog)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_a_sweep_over_a_file_of_targets_streams_json_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pymodbustcp_server({0: [3]}) as good, refusing_port() as bad:
        listing = tmp_path / "targets.txt"
        listing.write_text(f"# plant\n127.0.0.1:{good}\n127.0.0.1:{bad}\n")
        code, out, err = run_cli(
            capsys, "scan", "--file", str(listing), "--units", "1-3", "--per-host", "2", "--json"
        )
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    ok = sorted(r["unit"] for r in records if r["outcome"] == "ok")
    assert ok == [1, 2, 3]
    refused = [r for r in records if r["outcome"] == "refused"]
    assert len(refused) == 1 and refused[0]["unit"] is None
    assert "3 device(s) answered on 1 of 2 target(s)" in err


def test_the_table_lists_what_answered_with_identity_and_a_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    identification = DeviceIdentification(
        vendor_name=b"Acme", product_code=b"PLC-9", major_minor_revision=b"1.2"
    )
    with pymodbustcp_server({0: [5]}, identification) as port, refusing_port() as bad:
        code, out, _ = run_cli(
            capsys, "scan", f"127.0.0.1:{port}", f"127.0.0.1:{bad}", "--identify",
            "--per-host", "2",
        )  # fmt: skip
    assert code == 0
    assert "Acme PLC-9 1.2" in out
    assert f"127.0.0.1:{bad}" not in out  # refused targets are only counted
    assert "1 device(s) answered on 1 of 2 target(s)" in out


def test_a_sweep_behind_a_gateway_lists_the_units_that_answered_and_counts_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with simulator_thread(load_profile("gateway")) as sim:  # units 1, 2 and 10; 0x0B else
        target = f"127.0.0.1:{sim.address[1]}"
        code, out, _ = run_cli(capsys, "scan", target, "--units", "1-247")
        _, every, _ = run_cli(capsys, "scan", target, "--units", "1-247", "--json")
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert code == 0
    assert [row.split("│")[2].strip() for row in rows] == ["1", "2", "10"]
    assert "244 not listed (244 absent behind a gateway (0x0b)): --all lists them" in out
    assert len(every.splitlines()) == 247


def test_nothing_answering_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with refusing_port() as port:
        code, out, _ = run_cli(capsys, "scan", f"127.0.0.1:{port}", "--units", "1-247")
    assert code == 1
    assert "0 device(s) answered" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no targets"),
        (["127.0.0.1", "--units", "1-300"], "unit ids"),
        (["127.0.0.1", "--function", "16"], "function code 16"),
        (["127.0.0.1", "--json", "--csv"], "pick one"),
        (["10.0.0.0/8"], "split it into smaller ranges"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, "scan", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_a_progress_bar_is_drawn_on_a_terminal_and_not_in_a_pipe() -> None:
    with silent_server() as port:
        args = [sys.executable, "-m", "mcptool", "scan", f"127.0.0.1:{port}",
                "--units", "1-30", "--timeout", "0.05"]  # fmt: skip
        leader, follower = pty.openpty()
        drawn = bytearray()

        def drain() -> None:
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                drawn.extend(chunk)

        reader = threading.Thread(target=drain)
        reader.start()
        on_terminal = subprocess.run(
            args,
            stderr=follower,
            stdout=subprocess.PIPE,
            timeout=60,
            env={**os.environ, "TERM": "xterm"},
        )
        os.close(follower)
        reader.join(5)
        os.close(leader)
        piped = subprocess.run(args, capture_output=True, timeout=60)
    assert on_terminal.returncode == piped.returncode == 1
    assert b"scanning" in drawn
    assert b"scanning" not in piped.stderr
