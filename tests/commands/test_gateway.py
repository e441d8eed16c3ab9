"""``mcptool gateway``: check reports every problem with its path, one line each; run
refuses a bad config the same way, and with an [analysis] table analyses the polls.
(Delivery through outages and SIGKILL is proven in tests/gateway/.)"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.modbus import ModbusSimulator
from simulators.ollama import OllamaSimulator
from tests.gateway.conftest import float_profile, gateway_config, toml, until

ROOT = Path(__file__).resolve().parents[2]


def mcptool(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcptool", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_check_prints_one_line_per_problem_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        """
node = "edge"
[jsonl]
[[devices]]
name = "a"
host = "127.0.0.1"
intervall = 1
  [[devices.points]]
  name = "ok"
  address = 0
[[devices]]
name = "b"
host = "127.0.0.1"
template = "meter"
[[devices]]
name = "c"
host = "127.0.0.1"
  [[devices.points]]
  name = "x"
  address = 0
  [[devices.points]]
  name = "y"
  address = 1
  type = "flaot32"
"""
    )
    result = mcptool("gateway", "check", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert f'{path}: devices[2].points[1].type: unknown type "flaot32"' in lines[0] + "".join(
        line for line in lines if "flaot32" in line
    )
    assert any(line.startswith(f"{path}: devices[0].intervall: unknown setting") for line in lines)
    assert "Traceback" not in result.stderr


def test_example_prints_a_config_that_check_accepts(tmp_path: Path) -> None:
    listed = mcptool("gateway", "example")
    assert listed.returncode == 0, listed.stderr
    assert {"plant", "many-meters"} <= set(listed.stdout.split())
    for name in ("plant", "many-meters"):
        printed = mcptool("gateway", "example", name)
        assert printed.returncode == 0, printed.stderr
        saved = tmp_path / f"{name}.toml"
        saved.write_text(printed.stdout, encoding="utf-8")
        result = mcptool("gateway", "check", "--config", str(saved))
        assert result.returncode == 0, result.stderr
        assert f"{saved}: ok" in result.stdout


def test_an_unknown_example_is_one_line_and_exit_2() -> None:
    result = mcptool("gateway", "example", "nope")
    assert result.returncode == 2
    assert result.stderr == "error: no example config 'nope'; the examples: many-meters, plant\n"


def test_run_with_a_missing_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = mcptool("gateway", "run", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "file not found" in result.stderr
    assert "Traceback" not in result.stderr


async def test_run_with_an_analysis_table_analyses_the_polls(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    async with (
        ModbusSimulator([float_profile("d0", 2)]) as devices,
        OllamaSimulator(models=["llama3.2"], port=0) as ollama,
    ):
        raw = gateway_config(devices, tmp_path, mqtt_port=None, jsonl={"path": str(out)})
        config = tmp_path / "gateway.toml"
        config.write_text(
            toml(raw)
            + f'[analysis]\nollama = "{ollama.url}"\nwindow_s = 0.5\nmin_call_interval_s = 0\n'
            + '[[analysis.thresholds]]\npoint = "p0"\nabove = -1e9\n'
        )

        def typed() -> list[str]:
            lines = out.read_text().splitlines() if out.exists() else []
            return [json.loads(line).get("type", "") for line in lines]

        gateway = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mcptool", "gateway", "run", "--config", str(config), cwd=ROOT
        )
        try:
            await until(lambda: "trigger" in typed(), timeout=30, what="an analysis record")
        finally:
            gateway.send_signal(signal.SIGTERM)
            await asyncio.wait_for(gateway.wait(), 20)
    assert gateway.returncode == 0


def test_the_live_view_shows_what_each_destination_dropped() -> None:
    from rich.console import Console

    from mcptool.commands.gateway import _render

    sink = {"name": "uplink", "state": "connected", "lag": 0, "error": None}
    status = {
        "uptime": 10.0,
        "devices": [{"device": "boiler", "status": "online"}],
        "devices_online": 1,
        "produced": 100,
        "spool": {"depth": 0, "oldest_age": 0.0, "dropped": 0},
        "sinks": [{**sink, "dropped": 3}, {**sink, "name": "mqtt", "dropped": 0}],
    }
    console = Console(width=200, record=True)
    console.print(_render(status))
    text = console.export_text()
    assert "uplink: connected lag 0 dropped 3" in text
    assert "mqtt: connected lag 0" in text
    assert "mqtt: connected lag 0 dropped" not in text  # nothing dropped, nothing said


ONE_DEVICE = """
[jsonl]
path = "-"
[[devices]]
name = "a"
host = "127.0.0.1"
points = [{name = "p", address = 0}]
"""


def test_check_says_what_it_found_in_words_that_agree_with_the_counts(tmp_path: Path) -> None:
    path = tmp_path / "one.toml"
    path.write_text(ONE_DEVICE)
    result = mcptool("gateway", "check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout == f"{path}: ok: node edge, 1 device, 1 point in 1 read a cycle, to jsonl\n"
    )


def test_check_refuses_paths_that_run_could_not_open(tmp_path: Path) -> None:
    path = tmp_path / "paths.toml"
    path.write_text(
        ONE_DEVICE.replace('path = "-"', 'path = "out/readings.jsonl"')
        + '[spool]\npath = "/proc/nope/spool.db"\n'
        + '[mqtt]\nca_file = "missing-ca.pem"\n'
    )
    result = mcptool("gateway", "check", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}: spool.path: cannot create /proc/nope/spool.db: /proc takes no new files"
        " (No such file or directory)",
        f"{path}: mqtt.ca_file: {tmp_path}/missing-ca.pem does not exist: give the path of the"
        " file (relative to the config)",
        f"2 problems in {path}",
    ]
    # out/ can be created, so it is no problem; checking it left nothing behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paths.toml"]


def test_a_single_problem_is_a_single_line(tmp_path: Path) -> None:
    path = tmp_path / "nan.toml"
    path.write_text(ONE_DEVICE.replace("address = 0}", "address = 0, scale = nan}"))
    result = mcptool("gateway", "check", "--config", str(path))
    assert (result.returncode, result.stderr) == (
        2,
        f"{path}: devices[0].points[0].scale: should be a finite number, got nan\n",
    )


NUL = "has a NUL character: no file can be named so"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('[spool]\npath = "a\\u0000b"', f"spool.path: '{{dir}}/a\\x00b' {NUL}"),
        ('[mqtt]\nca_file = "a\\u0000b"', f"mqtt.ca_file: '{{dir}}/a\\x00b' {NUL}"),
        ('[spool]\npath = "."', "spool.path: {dir} is a directory: name a file in it"),
    ],
)
def test_paths_no_file_system_takes_are_refused_by_check(
    tmp_path: Path, table: str, problem: str
) -> None:
    path = tmp_path / "odd.toml"
    path.write_text(ONE_DEVICE + table + "\n")
    result = mcptool("gateway", "check", "--config", str(path))
    assert (result.returncode, result.stderr) == (2, f"{path}: {problem.format(dir=tmp_path)}\n")


def test_check_reads_the_whole_file_and_names_every_problem_of_the_analysis_too(
    tmp_path: Path,
) -> None:
    """One parse for the gateway's tables and [analysis] (mcptool.edge): every problem at
    once, the analysis's with its exact path, in the same words."""
    path = tmp_path / "edge.toml"
    path.write_text(
        ONE_DEVICE.replace("address = 0}", "address = 0, scale = inf}")
        + "[analysis]\nwindow_s = 0\n"
        + '[[analysis.thresholds]]\npoint = "p"\nabove = nan\n'
    )
    result = mcptool("gateway", "check", "--config", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}: devices[0].points[0].scale: should be a finite number, got inf",
        f"{path}: analysis.window_s: should be a number above 0, got 0",
        f"{path}: analysis.thresholds[0].above: should be a finite number, got nan",
        f"3 problems in {path}",
    ]
    path.write_text(ONE_DEVICE + '[analysis]\nmodel = "qwen2.5"\n')
    result = mcptool("gateway", "check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(", to jsonl, analysis by qwen2.5\n")


@pytest.mark.parametrize(("protocol", "warned"), [("3.1.1", True), ("5", False)])
def test_check_warns_of_device_names_natss_mqtt_listener_hangs_up_on(
    tmp_path: Path, protocol: str, warned: bool
) -> None:
    """NATS speaks MQTT 3.1.1 only and closes the connection on '.' or ' ' in a topic: a
    warning, not a problem (Mosquitto takes them); MQTT 5 cannot be NATS."""
    path = tmp_path / "nats.toml"
    path.write_text(
        f"""
node = "edge"
[mqtt]
protocol = "{protocol}"
topic = "fleet/mqtt/{{node}}/{{device}}"
[[devices]]
name = "d.1"
host = "127.0.0.1"
points = [{{name = "p", address = 0}}]
[[devices]]
name = "ok"
host = "127.0.0.1"
points = [{{name = "p", address = 0}}]
"""
    )
    result = mcptool("gateway", "check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: ok: node edge, 2 devices")
    if warned:
        assert result.stderr == (
            f"{path}: warning: mqtt: \"d.1\" in MQTT topics: with '.' or ' ' NATS's MQTT"
            " listener closes the connection and the gateway drops those readings; if [mqtt]"
            " points at NATS, rename them or use [uplink] to mcptool hub --nats\n"
        )
    else:
        assert result.stderr == ""
