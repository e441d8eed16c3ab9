"""`mcptool hub --ollama URL --mqtt URL`: the hub analyses the polls its nodes relay and
publishes the findings to a real Mosquitto on mcptool/<node>/<device>/analysis."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from mcptool.cli import main
from mcptool.link import LinkClient
from simulators.ollama import OllamaSimulator
from tests.analysis.conftest import T0, Mosquitto
from tests.link.conftest import write_keys
from tests.link.test_commands import mcptool, start_hub

SECRET = "correct-horse-battery-staple"


def poll(t: float, level: float) -> bytes:
    """A poll of device ``tank`` as a gateway spools and relays it."""
    ms = round(t * 1000)
    reading = {"device": "tank", "point": "level", "seq": 1, "ts": ms, "value": level}
    return json.dumps(
        {"node": "node-1", "device": "tank", "kind": "telemetry", "ts": ms, "readings": [reading]}
    ).encode()


def tank_jumps() -> list[bytes]:
    """Seven quiet 10 s windows (the default z-score needs five), a window 20 cm higher,
    and one reading that closes it."""
    bodies = []
    for w in range(9):
        for i in range(5 if w < 8 else 1):
            level = 60.0 + (20.0 if w == 7 else 0.0) + 0.5 * math.sin(i * 1.3 + w)
            bodies.append(poll(T0 + w * 10.0 + i * 2.0, level))
    return bodies


async def test_hub_with_ollama_and_mqtt_publishes_findings_of_relayed_polls(
    tmp_path: Path, ollama: OllamaSimulator, mosquitto: Mosquitto
) -> None:
    keys = write_keys(tmp_path / "keys", f"node-1 {SECRET}\n")
    received: list[tuple[str, dict[str, Any]]] = []
    async with asyncio.timeout(60), aiomqtt.Client("127.0.0.1", mosquitto.port) as subscriber:
        await subscriber.subscribe("mcptool/#", qos=1)
        hub = start_hub(
            "--keys",
            str(keys),
            "--quiet",
            "--ollama",
            ollama.url,
            "--mqtt",
            f"mqtt://127.0.0.1:{mosquitto.port}",
        )
        try:
            async with LinkClient(hub.url, "node-1", SECRET.encode()) as link:
                for body in tank_jumps():
                    await link.send(body)
            async for message in subscriber.messages:
                record = json.loads(message.payload)  # type: ignore[arg-type]
                received.append((str(message.topic), record))
                if record["type"] == "finding":
                    break
        finally:
            hub.stop()
    assert hub.process.returncode == 0
    assert {topic for topic, _ in received} == {"mcptool/node-1/tank/analysis"}
    finding = received[-1][1]
    assert finding["node"] == "node-1" and finding["device"] == "tank"
    assert finding["source"] == "model" and finding["window"]["start"] == T0 + 70
    assert ollama.counters.by_path["/api/chat"] >= 1  # the hub asked the model


def test_hub_analysis_urls_that_cannot_work_are_one_line_errors(tmp_path: Path) -> None:
    keys = write_keys(tmp_path / "keys", f"node-1 {SECRET}\n")
    for option, url, error in [
        ("--ollama", "ftp://127.0.0.1", "must start with http:// or https://"),
        ("--ollama", "http://127.0.0.1:99999", "the port is not a number from 1 to 65535"),
        ("--mqtt", "http://127.0.0.1:1883", "must start with mqtt:// or tcp://"),
        ("--mqtt", "notaurl", "not a URL: use mqtt://host:port"),
    ]:
        result = mcptool("hub", "--listen", "127.0.0.1:0", "--keys", str(keys), option, url)
        assert result.returncode == 2
        assert result.stderr.startswith(f"error: {option} {url}: {error}")
        assert len(result.stderr.splitlines()) == 1


def open_files() -> set[str]:
    fds = Path("/proc/self/fd")
    return {str(fd.readlink()) for fd in fds.iterdir() if fd.is_symlink()}


def test_a_hub_that_cannot_listen_closes_its_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = write_keys(tmp_path / "keys", f"node-1 {SECRET}\n")
    journal = tmp_path / "hub.journal"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        with pytest.raises(SystemExit) as exited:
            main(["hub", "--listen", listen, "--keys", str(keys), "--journal", str(journal)])
        # exited holds the traceback, and with it the hub's frames: only an explicit
        # close can have released the journal by now.
        still_open = str(journal) in open_files()
    assert exited.value.code == 2
    assert f"error: --listen {listen}: cannot listen there" in capsys.readouterr().err
    assert journal.exists() and not still_open


def banner(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "mcptool", "hub", "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline()


def test_the_banner_names_the_journal_and_what_it_resumes(tmp_path: Path) -> None:
    keys = write_keys(tmp_path / "keys", f"node-1 {SECRET}\n")
    key = write_keys(tmp_path / "node.key", f"{SECRET}\n")
    journal = tmp_path / "hub.journal"
    process, line = banner("--keys", str(keys), "--journal", str(journal))
    try:
        assert line.startswith("hub listening on mcp://127.0.0.1:")
        assert line.endswith(f" (1 node key, journal {journal}: new)\n")
        url = line.split()[3]
        sent = mcptool(
            "link", "send", url, "--node-id", "node-1", "--key-file", str(key), "--data", "x"
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("delivered 1 frame (1 byte), all acknowledged, ")
    finally:
        process.terminate()
        process.communicate(timeout=10)
    process, line = banner("--keys", str(keys), "--journal", str(journal))
    process.terminate()
    process.communicate(timeout=10)
    assert line.endswith(f" (1 node key, journal {journal}: resuming 1 node)\n")
