"""Chaos: the real `mcptool gateway run` stopped and started again and again, as a user
(or a power supply) would, and then its spool's disk filled up and freed, while a
subscriber checks every device's sequence numbers.

- Simulated devices (`mcptool simulate modbus`) and a real Mosquitto, each in its own
  process, stay up; the subscriber (persistent QoS 1 session) runs here.
- `restarts` runs of the gateway, each stopped after a random moment, alternately with
  SIGTERM and SIGKILL; in every fourth run the broker goes away mid-run and comes back
  only after the gateway stopped, so the next run starts with a backlog; from the middle
  on the config has a second destination (JSON Lines), added between two runs.
- A last run with the broker up, stopped cleanly, drains what is left.
- The full-disk episode: a gateway whose spool lives on a small tmpfs; a file fills the
  tmpfs, later it is removed. The gateway must say so (retained status ``degraded``),
  keep delivering from memory, and recover by itself.

Truth comes from the spool file after the last clean stop (every device's next sequence
number: all numbers below it were given to readings) and from the gateway's own log
(every reported drop names its sequence range). A reading is lost when it never reached
the subscriber and is not still waiting in the spool; unreported when it is lost and no
drop line names it. Duplicates are the same reading received again (an identified
resend); a sequence number received with different content would be a conflict.

Last stdout line, one JSON object: produced, delivered, lost, unreported_lost,
duplicates, conflicts, restarts, and the full-disk episode's figures (disk_*).

    .venv/bin/python bench/chaos.py [--restarts 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

ROOT = Path(__file__).resolve().parents[1]
DROP_LINE = re.compile(r"dropped (\S+) seq (\d+)-(\d+)")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(condition: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


# -- peers -------------------------------------------------------------------------------


class Broker:
    """Mosquitto with persistence, so the subscriber's session survives its restarts."""

    def __init__(self, workdir: Path) -> None:
        program = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        config = workdir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {workdir}/\nmax_queued_messages 0\nlog_dest none\n"
            f"user {getpass.getuser()}\n"
        )
        self.argv = [program, "-c", str(config)]
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(self.argv, stderr=subprocess.DEVNULL)
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            await asyncio.sleep(0.02)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    @property
    def up(self) -> bool:
        return self.process is not None


@dataclass
class Subscriber:
    """Every reading by (node, device, seq); resends and conflicts counted."""

    port: int
    seen: dict[tuple[str, str, int], bytes] = field(default_factory=dict)
    duplicates: int = 0
    conflicts: int = 0
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    status_history: list[tuple[str, str]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        connected = asyncio.Event()
        self._task = asyncio.create_task(self._run(connected))
        await asyncio.wait_for(connected.wait(), 10)

    async def _run(self, connected: asyncio.Event) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="chaos-checker", clean_session=False
                ) as client:
                    await client.subscribe("#", qos=1)
                    connected.set()
                    async for message in client.messages:
                        self._take(str(message.topic), bytes(message.payload))  # type: ignore[arg-type]
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    def _take(self, topic: str, payload: bytes) -> None:
        data = json.loads(payload)
        if not topic.endswith("/telemetry"):
            self.statuses[topic] = data
            self.status_history.append((topic, str(data.get("state") or data.get("status"))))
            return
        for reading in data["readings"]:
            key = (data["node"], reading["device"], reading["seq"])
            body = json.dumps(reading, sort_keys=True).encode()
            old = self.seen.get(key)
            if old is None:
                self.seen[key] = body
            elif old == body:
                self.duplicates += 1
            else:
                self.conflicts += 1

    def count(self, node: str) -> int:
        return sum(1 for key in self.seen if key[0] == node)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def start_devices(count: int) -> tuple[subprocess.Popen[bytes], list[tuple[str, int]]]:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mcptool", "simulate", "modbus", "--profile", "boiler"),
            *("--devices", str(count), "--port", "0", "--json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert process.stdout is not None
    devices = []
    for _ in range(count):
        line = json.loads(process.stdout.readline())
        devices.append((line["device"], line["port"]))
    return process, devices


def gateway_config(
    node: str, spool: Path, broker: int, devices: list[tuple[str, int]], jsonl: Path | None
) -> str:
    lines = [
        f'node = "{node}"',
        "[spool]",
        f'path = "{spool}"',
        "[mqtt]",
        'host = "127.0.0.1"',
        f"port = {broker}",
        'topic = "chaos/{node}/{device}/telemetry"',
        "[defaults]",
        "interval = 0.05",
    ]
    if jsonl is not None:
        lines += ["[jsonl]", f'path = "{jsonl}"']
    for name, port in devices:
        lines += ["[[devices]]", f'name = "{name}"', 'host = "127.0.0.1"', f"port = {port}"]
        for address in range(4):
            lines += [
                "  [[devices.points]]",
                f'  name = "r{address}"',
                '  table = "holding"',
                f"  address = {address}",
                '  type = "uint16"',
            ]
    return "\n".join(lines) + "\n"


class GatewayRuns:
    """Starts `mcptool gateway run` processes with one config, collecting their logs."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.runs = 0

    async def start(self) -> asyncio.subprocess.Process:
        self.runs += 1
        with open(self.logs / f"{self.config.stem}-{self.runs}.log", "wb") as logfile:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "mcptool",
                "gateway",
                "run",
                "--config",
                str(self.config),
                "--no-status",
                stdout=subprocess.DEVNULL,
                stderr=logfile,
                cwd=ROOT,
            )

    def reported(self) -> dict[str, set[int]]:
        """Every sequence number a drop line in any run's log names, per device."""
        dropped: dict[str, set[int]] = {}
        for path in self.logs.glob(f"{self.config.stem}-*.log"):
            for device, first, last in DROP_LINE.findall(path.read_text(errors="replace")):
                dropped.setdefault(device, set()).update(range(int(first), int(last) + 1))
        return dropped

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs.glob("*.log"))


async def stop(process: asyncio.subprocess.Process, sig: signal.Signals) -> int:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    return await asyncio.wait_for(process.wait(), 60)


def account(
    node: str, spool: Path, subscriber: Subscriber, reported: dict[str, set[int]]
) -> dict[str, int]:
    """Produced, delivered, lost, unreported_lost for one gateway, from its spool file."""
    db = sqlite3.connect(spool)
    produced = {name: next_seq - 1 for name, next_seq in db.execute("SELECT * FROM devices")}
    waiting: dict[str, set[int]] = {}
    for device, first, count in db.execute("SELECT device, seq_first, count FROM records"):
        waiting.setdefault(device, set()).update(range(first, first + count))
    db.close()
    delivered = lost = unreported = 0
    for device, last in produced.items():
        for seq in range(1, last + 1):
            if (node, device, seq) in subscriber.seen:
                delivered += 1
            elif seq not in waiting.get(device, set()):
                lost += 1
                unreported += seq not in reported.get(device, set())
    return {
        "produced": sum(produced.values()),
        "delivered": delivered,
        "lost": lost,
        "unreported_lost": unreported,
        "waiting": sum(len(s) for s in waiting.values()),
    }


async def delivered_everything(node: str, spool: Path, subscriber: Subscriber) -> None:
    """After a clean stop: wait until the subscriber has what the spool says was sent."""
    await until(lambda: account(node, spool, subscriber, {})["lost"] == 0, timeout=20)


# -- the two episodes --------------------------------------------------------------------


async def restarts_episode(
    workdir: Path,
    broker: Broker,
    subscriber: Subscriber,
    devices: list[tuple[str, int]],
    restarts: int,
    rng: random.Random,
) -> dict[str, Any]:
    spool = workdir / "spool.db"
    config = workdir / "chaos.toml"
    runs = GatewayRuns(config, workdir)
    config.write_text(gateway_config("chaos", spool, broker.port, devices, None))
    signals = {"SIGTERM": 0, "SIGKILL": 0}
    backlog_runs = 0
    for i in range(restarts):
        if i == restarts // 2:  # a destination added between two runs
            config.write_text(
                gateway_config("chaos", spool, broker.port, devices, workdir / "out.jsonl")
            )
        if not broker.up:
            await broker.start()
        process = await runs.start()
        moment = rng.uniform(0.4, 2.0)
        if i % 4 == 1:  # the broker goes away: the next run starts with a backlog
            await asyncio.sleep(moment / 2)
            broker.stop()
            backlog_runs += 1
            await asyncio.sleep(moment / 2)
        else:
            await asyncio.sleep(moment)
        sig = signal.SIGTERM if i % 2 == 0 else signal.SIGKILL
        signals[sig.name] += 1
        code = await stop(process, sig)
        log(f"run {i + 1}/{restarts}: {sig.name} after {moment:.2f} s (exit {code})")
    if not broker.up:
        await broker.start()
    process = await runs.start()
    await asyncio.sleep(2.0)
    code = await stop(process, signal.SIGTERM)
    log(f"final run: SIGTERM, exit {code}")
    await delivered_everything("chaos", spool, subscriber)
    figures = account("chaos", spool, subscriber, runs.reported())
    jsonl = workdir / "out.jsonl"
    figures["jsonl_lines"] = len(jsonl.read_bytes().splitlines()) if jsonl.exists() else 0
    return {**figures, "restarts": restarts, "backlog_runs": backlog_runs, **signals}


def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def fill(path: Path) -> int:
    """Write until the file system says no; returns the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as file:
        try:
            while True:
                written += file.write(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):  # the last few bytes, so that nothing fits
            while file.write(b"\0" * 512):
                written += 512
    return written


async def full_disk_episode(
    workdir: Path, broker: Broker, subscriber: Subscriber, devices: list[tuple[str, int]]
) -> dict[str, Any]:
    disk = workdir / "disk"
    if not mount_tmpfs(disk, "4m"):
        return {"disk_episode": "skipped: cannot mount a tmpfs here (needs root)"}
    try:
        spool = disk / "spool.db"
        config = workdir / "disk.toml"
        config.write_text(gateway_config("chaos-disk", spool, broker.port, devices, None))
        runs = GatewayRuns(config, workdir)
        process = await runs.start()
        gateway_topic = "mcptool/chaos-disk/status"
        await until(lambda: subscriber.count("chaos-disk") > 100, timeout=20)
        filler = disk / "filler"
        fill(filler)
        degraded = await until(
            lambda: subscriber.statuses.get(gateway_topic, {}).get("state") == "degraded", 20
        )
        during = subscriber.count("chaos-disk")
        await asyncio.sleep(2.0)  # the outage lasts a while
        delivered_during = subscriber.count("chaos-disk") - during
        filler.unlink()
        recovered = await until(
            lambda: subscriber.statuses.get(gateway_topic, {}).get("state") == "ok", 20
        )
        await asyncio.sleep(1.0)
        code = await stop(process, signal.SIGTERM)
        await delivered_everything("chaos-disk", spool, subscriber)
        figures = account("chaos-disk", spool, subscriber, runs.reported())
        text = runs.log_text()
        return {"disk_" + key: value for key, value in figures.items()} | {
            "disk_said_degraded": degraded,
            "disk_error_logged": "cannot write" in text or "disk is full" in text,
            "disk_delivered_during_outage": delivered_during,
            "disk_recovered": recovered,
            "disk_exit": code,
        }
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True)


async def run(restarts: int = 20, seed: int = 1, devices: int = 3) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="mcptool-chaos-") as tmp:
        workdir = Path(tmp)
        broker = Broker(workdir)
        await broker.start()
        simulator, addresses = start_devices(devices)
        subscriber = Subscriber(broker.port)
        try:
            await subscriber.start()
            started = time.monotonic()
            result = await restarts_episode(workdir, broker, subscriber, addresses, restarts, rng)
            result |= await full_disk_episode(workdir, broker, subscriber, addresses)
            result["duplicates"] = subscriber.duplicates
            result["conflicts"] = subscriber.conflicts
            result["seconds"] = round(time.monotonic() - started, 1)
            return result
        finally:
            await subscriber.stop()
            simulator.terminate()
            simulator.wait(10)
            if simulator.stdout is not None:
                simulator.stdout.close()
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--devices", type=int, default=3)
    args = parser.parse_args()
    result = asyncio.run(run(args.restarts, args.seed, args.devices))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
