"""`mcptool demo --duration 20 --json`, run as a user runs it: telemetry from the three
simulated devices, and a finding about the boiler that runs hot."""

from __future__ import annotations

import asyncio
import json
import os
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
def test_demo_prints_telemetry_and_a_finding_as_json_lines() -> None:
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
