"""``mcptool simulate modbus`` as a user runs it: prints where devices listen, serves, stops."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mcptool.cli import main
from tests.simulators.modbus.conftest import RawClient, read_holding


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out, err


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a non-interactive shell's `cmd &`


@pytest.mark.parametrize(
    ("stop", "inherited"),
    [(signal.SIGINT, None), (signal.SIGTERM, None), (signal.SIGINT, ignore_sigint)],
    ids=["ctrl-c", "sigterm", "ctrl-c-inherited-ignored"],
)
async def test_serves_each_device_and_applies_faults_until_stopped(
    stop: signal.Signals, inherited: Callable[[], None] | None
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcptool", "simulate", "modbus", "--port", "0", "--json",
        "--profile", "boiler", "--devices", "2", "--fault", "exception:6,device=1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=inherited,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines = [json.loads(await asyncio.wait_for(proc.stdout.readline(), 30)) for _ in range(2)]
        assert [d["device"] for d in lines] == ["boiler-1", "boiler-2"]
        replies = []
        for device in lines:
            client = await RawClient.connect((device["host"], device["port"]))
            replies.append(await client.request(1, read_holding(8, 2)))
            await client.close()
    finally:
        proc.send_signal(stop)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert replies == [bytes([3, 4, 0x42, 0x8C, 0, 0]), bytes([0x83, 6])]  # 70.0, then 0x06
    assert proc.returncode == 0, err.decode()
    assert err.decode().splitlines()[-1] == "stopped"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "latncy:0.1"], 'error: fault "latncy:0.1": kind: unknown fault "latncy"'),
        (["--fault", "latency:0.1,every=0"], 'error: fault "latency:0.1,every=0": every: must be'),
        (["--profile", "no-such-device"], "error: no-such-device: cannot read profile"),
        (["--fault", "silence,device=boilr"], 'error: fault "silence,device=boilr": device: no'),
        (
            ["--fault", "silence,from=20,until=10"],
            'error: fault "silence,from=20,until=10": until: must be after from',
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, "simulate", "modbus", "--port", "0", *args)
    assert code == 2
    assert err.strip().startswith(message)
    assert len(err.strip().splitlines()) == 1


def test_bad_profile_names_file_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "boiler.toml"
    path.write_text('[[points]]\ntable = "holding"\naddress = 0\ntype = "float32"\n' * 3 +
                    '[[points]]\ntable = "holding"\naddress = 9\ntype = "flaot32"\n')  # fmt: skip
    code, _, err = run_cli(capsys, "simulate", "modbus", "--port", "0", "--profile", str(path))
    assert code == 2
    assert err.strip().startswith('error: boiler.toml: points[3].type: unknown type "flaot32"')


def test_runs_for_a_duration_and_prints_addresses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "simulate", "modbus", "--port", "0", "--profile", "gateway", "--duration", "0.1"
    )
    assert code == 0
    assert out.startswith("gateway: listening on 127.0.0.1:")
    assert "(units 1,2,10)" in out


def test_the_profile_help_names_every_bundled_profile(capsys: pytest.CaptureFixture[str]) -> None:
    from simulators.modbus import bundled_profiles

    code, out, _ = run_cli(capsys, "simulate", "modbus", "--help")
    assert code == 0
    help_text = " ".join(out.split())
    assert [name for name in bundled_profiles() if name not in help_text] == []


async def test_a_scheduled_silence_takes_the_device_offline_and_back() -> None:
    # from=4: the first poll, right after the device prints where it listens, comes well
    # before; the polls then see the silence begin and end on the simulator's own clock.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcptool", "simulate", "modbus", "--port", "0", "--json",
        "--fault", "silence,from=4,until=7",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        device = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while seen[-1:] != ["answers"] or "silent" not in seen:
            assert loop.time() < deadline, seen
            client = await RawClient.connect((device["host"], device["port"]))
            try:
                client.send(1, 1, read_holding(8, 2))
                await client.frame(timeout=0.5)
                outcome = "answers"
            except TimeoutError:
                outcome = "silent"
            finally:
                await client.close()
            if seen[-1:] != [outcome]:
                seen.append(outcome)
            if outcome == "answers":
                await asyncio.sleep(0.2)  # the poll interval (a silent poll took 0.5 s)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert seen == ["answers", "silent", "answers"]
    assert proc.returncode == 0, err.decode()
    assert "fault: silence,from=4,until=7" in err.decode()
