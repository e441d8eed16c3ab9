"""`mcptool demo --duration 20 --json`, run as a user runs it: telemetry from the three
simulated devices, and a finding about the boiler that runs hot."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import require_program

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_demo_prints_telemetry_and_a_finding_as_json_lines(tmp_path: Path) -> None:
    mcptool = shutil.which("mcptool") or str(Path(sys.executable).with_name("mcptool"))
    # Nothing listens on this port, so the demo takes the simulator even on a machine
    # that runs a real Ollama (whose answers would be neither quick nor predictable).
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [
            mcptool,
            "demo",
            "--duration",
            "20",
            "--json",
            "--ollama",
            nowhere,
            "--engine",
            "simulator",
            "--dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0]["type"] == "demo" and records[0]["ollama"] == "simulator"
    assert "using the Ollama simulator" in result.stderr and "SIMULATED" in result.stderr
    telemetry = [r for r in records if r["type"] == "telemetry"]
    assert {r["device"] for r in telemetry} == {"boiler", "power_meter", "io_block"}
    assert telemetry[0]["values"] and telemetry[0]["units"]
    findings = [r for r in records if r["type"] == "finding"]
    assert findings, result.stderr
    boiler = findings[0]
    assert boiler["device"] == "boiler" and boiler["source"] == "model"
    assert boiler["severity"] in ("warning", "critical")
    assert "supply_temperature" in boiler["points"]
    assert boiler["window"]["seconds"] == 4.0 and boiler["timings"]["total_ms"] >= 0
    # a simulated answer says so in every copy: no canned text passes for a model's
    assert boiler["model"] == "ollama-simulator" and boiler["summary"].startswith("Simulated:")
    assert "°C" in boiler["summary"] and "°c" not in boiler["summary"]
    triggers = [r for r in records if r["type"] == "trigger"]
    assert any(t["rule"] == "threshold" and t["device"] == "boiler" for t in triggers)


def test_a_bad_broker_url_is_one_line_with_the_fix() -> None:
    mcptool = shutil.which("mcptool") or str(Path(sys.executable).with_name("mcptool"))
    result = subprocess.run(
        [mcptool, "demo", "--mqtt", "http://127.0.0.1:1883"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: --mqtt http://127.0.0.1:1883: must start with mqtt://, mqtts:// or tcp://,"
        " e.g. mqtt://host:port\n"
    )


@pytest.mark.slow
@pytest.mark.peer
async def test_demo_also_publishes_telemetry_and_findings_to_a_broker(tmp_path: Path) -> None:
    from tests.analysis.conftest import Mosquitto

    broker = Mosquitto(require_program("mosquitto"), tmp_path)
    try:
        await broker.ready()
        topics: dict[str, list[dict[str, object]]] = {}
        async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
            await subscriber.subscribe("mcptool/#", qos=1)
            mcptool = shutil.which("mcptool") or str(Path(sys.executable).with_name("mcptool"))
            process = await asyncio.create_subprocess_exec(
                mcptool,
                "demo",
                "--duration",
                "20",
                "--json",
                "--ollama",
                f"http://127.0.0.1:{free_port()}",
                "--engine",
                "simulator",
                "--dir",
                str(tmp_path / "demo"),
                "--mqtt",
                f"mqtt://127.0.0.1:{broker.port}",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )

            async def collect() -> None:
                async for message in subscriber.messages:
                    payload = json.loads(message.payload)  # type: ignore[arg-type]
                    topics.setdefault(str(message.topic), []).append(payload)

            collector = asyncio.create_task(collect())
            _, stderr = await asyncio.wait_for(process.communicate(), 90)
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)
        assert process.returncode == 0, stderr.decode()
    finally:
        broker.stop()
    assert topics["mcptool/demo/boiler/telemetry"][0]["readings"]
    findings = [r for r in topics.get("mcptool/demo/boiler/analysis", []) if r["type"] == "finding"]
    assert findings and findings[0]["source"] == "model"


@pytest.mark.slow
def test_after_the_demo_the_ask_command_it_printed_answers_about_the_plant(
    tmp_path: Path,
) -> None:
    """What a new user does: run the demo, which asks the plant a question before it
    stops, then run the `mcptool ask` command it printed, with the demo gone."""
    mcptool = shutil.which("mcptool") or str(Path(sys.executable).with_name("mcptool"))
    demo = subprocess.run(
        [mcptool, "demo", "--duration", "14", "--json", "--engine", "simulator",
         "--ollama", f"http://127.0.0.1:{free_port()}", "--dir", str(tmp_path / "demo")],
        cwd=ROOT, capture_output=True, text=True, timeout=90,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    (asked,) = [r for r in map(json.loads, demo.stdout.splitlines()) if r["type"] == "ask"]
    # in the demo: the running gateway's current values, through the agent loop
    assert asked["question"] == "why is the boiler running hot?" and asked["simulated"]
    calls = {c["name"]: c for c in asked["calls"]}
    assert list(calls) == ["list_devices", "read_values", "list_findings"]
    values = json.loads(calls["read_values"]["result"])
    assert values["source"] == "gateway" and values["values"]["supply_temperature"] > 85
    assert calls["read_values"]["result"] in asked["answer"]
    plant = json.loads(calls["list_devices"]["result"])["devices"][0]
    setpoint = next(p for p in plant["points"] if p["name"] == "setpoint")
    assert (setpoint["writable"], setpoint["min"], setpoint["max"]) == (True, 40, 80)
    assert plant["description"] and all(p["description"] for p in plant["points"])
    assert asked["command"] in demo.stderr  # what the user reads at the end

    # after the demo: no gateway, no simulated device; the spool and config stayed
    argv = shlex.split(asked["command"])
    assert argv[:2] == ["mcptool", "ask"] and "--engine" in argv
    later = subprocess.run(
        [mcptool, *argv[1:], "--json"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert later.returncode == 0, later.stderr
    assert "Traceback" not in later.stderr
    answer = json.loads(later.stdout)
    calls = {c["name"]: c for c in answer["calls"]}
    assert list(calls) == ["list_devices", "read_values", "list_findings", "read_history"]
    # reading now fails as a tool error that says where to look instead ...
    assert calls["read_values"]["error"]
    assert "boiler gave no current value (connection refused" in calls["read_values"]["result"]
    # ... and the answer quotes what the demo's gateway recorded: findings and history
    findings = json.loads(calls["list_findings"]["result"])["records"]
    assert any(f["type"] == "finding" and f["device"] == "boiler" for f in findings)
    history = json.loads(calls["read_history"]["result"])
    assert history["point"] == "supply_temperature" and history["samples"]
    last = history["samples"][-1]["value"]
    assert last > 85 and json.dumps(last) in answer["answer"]
    assert answer["simulated"] is True


def test_a_directory_another_demo_uses_is_refused_in_one_line(tmp_path: Path) -> None:
    import fcntl

    mcptool = shutil.which("mcptool") or str(Path(sys.executable).with_name("mcptool"))
    with (tmp_path / "demo.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running demo holds it
        result = subprocess.run(
            [mcptool, "demo", "--engine", "simulator", "--dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"error: another mcptool demo uses {tmp_path}: stop it, or give this one --dir\n"
    )


def test_a_directory_it_cannot_make_is_refused_in_one_line(tmp_path: Path) -> None:
    mcptool = shutil.which("mcptool") or str(Path(sys.executable).with_name("mcptool"))
    (tmp_path / "file").write_text("")
    result = subprocess.run(
        [mcptool, "demo", "--engine", "simulator", "--dir", str(tmp_path / "file" / "demo")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"error: --dir {tmp_path}/file/demo: cannot use it (Not a directory):"
        " give a writable directory\n"
    )
