"""Gateway test fixtures: a real Mosquitto on an ephemeral loopback port, a subscriber that
checks per-device sequence numbers, a real MCP hub (LinkServer), and simulated devices."""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from mcptool.link import LinkServer
from simulators.modbus import DeviceProfile, ModbusSimulator
from simulators.modbus import Point as SimPoint
from tests.conftest import require_program

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A gateway test that leaks a file, socket or transport fails, here and not in the
    field: a gateway runs for months, reconnecting to a broker that may be away for days.
    Leaked objects are reported by a ResourceWarning when collected, ignored by default
    and, raised from ``__del__``, seen by pytest only as an "unraisable" exception; both
    become errors. (This hook sees the whole session's items, hence the path check.)"""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.filterwarnings("error::ResourceWarning"))
            item.add_marker(
                pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
            )


async def until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what or condition}") from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """Mosquitto with persistence in a temp dir, so a restart keeps queued messages for
    persistent sessions (as a production broker would); stop() is a clean SIGTERM."""

    def __init__(
        self,
        program: str,
        workdir: Path,
        password_file: Path | None = None,
        listener_options: str = "",
        max_queued_messages: int = 0,
    ) -> None:
        self.program = program
        self.port = free_port()
        self.workdir = workdir
        self.config = workdir / "mosquitto.conf"
        access = f"password_file {password_file}\n" if password_file else "allow_anonymous true\n"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"{listener_options}"
            f"{access}"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            f"max_queued_messages {max_queued_messages}\n"
            "log_dest none\n"
            # as root, mosquitto would switch to user "mosquitto", who cannot write here
            f"user {getpass.getuser()}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.program, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def started(self) -> None:
        self.start()
        await self.wait_ready()

    async def wait_ready(self) -> None:
        async def accepting() -> None:
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    assert self.process is not None and self.process.poll() is None, (
                        "mosquitto died"
                    )
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                return

        async with asyncio.timeout(10):
            await accepting()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    program = require_program("mosquitto")
    workdir = tmp_path / "broker"
    workdir.mkdir()
    b = Broker(program, workdir)
    await b.started()
    try:
        yield b
    finally:
        b.stop()


@dataclass
class ReadingLog:
    """Every reading received, by device and sequence number, with the nothing-lost check.

    ``seen[device][seq]`` holds the first copy of each reading; a later copy with the same
    sequence number is a duplicate, and must be the same reading (a resend).
    """

    seen: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    duplicates: int = 0
    conflicting: list[tuple[str, int]] = field(default_factory=list)
    messages: int = 0

    def take(self, message: dict[str, Any]) -> None:
        self.messages += 1
        for reading in message["readings"]:
            device, seq = reading["device"], reading["seq"]
            readings = self.seen.setdefault(device, {})
            if seq in readings:
                self.duplicates += 1
                if readings[seq] != reading:
                    self.conflicting.append((device, seq))
            else:
                readings[seq] = reading

    def count(self, device: str | None = None) -> int:
        if device is not None:
            return len(self.seen.get(device, {}))
        return sum(len(v) for v in self.seen.values())

    def missing(self, produced: dict[str, int]) -> dict[str, list[int]]:
        """Sequence numbers produced (1..last per device) that never arrived."""
        gaps: dict[str, list[int]] = {}
        for device, last in produced.items():
            got = self.seen.get(device, {})
            absent = [seq for seq in range(1, last + 1) if seq not in got]
            if absent:
                gaps[device] = absent
        return gaps

    def check_nothing_lost(self, produced: dict[str, int]) -> None:
        assert produced and all(last > 0 for last in produced.values()), produced
        assert self.missing(produced) == {}
        assert self.conflicting == [], "a duplicate sequence number carried another reading"
        unknown = {d: max(s) for d, s in self.seen.items() if max(s) > produced.get(d, 0)}
        assert unknown == {}, "readings beyond what the gateway produced"


@dataclass
class Subscriber(ReadingLog):
    """Collects telemetry over a persistent QoS 1 session, reconnecting across outages."""

    port: int = 0
    topic: str = "mcptool/#"
    retained: dict[str, Any] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        connected = asyncio.Event()
        self._task = asyncio.create_task(self._run(connected))
        await asyncio.wait_for(connected.wait(), 10)

    async def _run(self, connected: asyncio.Event) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=f"checker-{id(self)}", clean_session=False
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    connected.set()
                    async for message in client.messages:
                        data = json.loads(message.payload)  # type: ignore[arg-type]
                        if str(message.topic).endswith("/telemetry"):
                            self.take(data)
                        else:
                            self.retained[str(message.topic)] = data
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def subscriber(broker: Broker) -> AsyncIterator[Subscriber]:
    sub = Subscriber(port=broker.port)
    await sub.start()
    try:
        yield sub
    finally:
        await sub.stop()


KEY = "0123456789abcdef0123456789abcdef"


class Hub:
    """A hub that can be restarted on the same port (its ledger is in memory: lost)."""

    def __init__(self) -> None:
        self.log = ReadingLog()
        self.port = 0
        self.server: LinkServer | None = None
        self.sessions = 0

    def _data(self, node: str, seq: int, body: bytes) -> None:
        self.log.take(json.loads(body))

    def _session(self, node: str, up: bool, reason: str) -> None:
        self.sessions += up

    async def start(self) -> None:
        self.server = LinkServer(
            "127.0.0.1",
            self.port,
            keys={"test": KEY.encode()},
            on_data=self._data,
            on_session=self._session,
        )
        await self.server.start()
        self.port = self.server.address[1]

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(abort=True)
            self.server = None


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    h = Hub()
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


def float_profile(name: str, points: int) -> DeviceProfile:
    return DeviceProfile(
        name=name,
        points=[
            SimPoint(
                "holding", i * 2, "float32", value={"kind": "counter", "rate": 10}, name=f"p{i}"
            )
            for i in range(points)
        ],
    )


@pytest.fixture
async def devices() -> AsyncIterator[ModbusSimulator]:
    """Three simulated devices with 10 float32 points each."""
    sim = ModbusSimulator([float_profile(f"d{i}", 10) for i in range(3)])
    async with sim:
        yield sim


def gateway_config(
    sim: ModbusSimulator, tmp: Path, *, mqtt_port: int | None, **extra: Any
) -> dict[str, Any]:
    """A config dict polling every device of ``sim`` every 50 ms."""
    config: dict[str, Any] = {
        "node": "test",
        "spool": {"path": str(tmp / "spool.db"), "commit_interval": 0.02},
        "devices": [
            {
                "name": f"d{i}",
                "host": host,
                "port": port,
                "interval": 0.05,
                "timeout": 0.3,
                "backoff_initial": 0.1,
                "backoff_max": 0.5,
                "points": [
                    {"name": f"p{j}", "address": j * 2, "type": "float32"} for j in range(10)
                ],
            }
            for i, (host, port) in enumerate(sim.addresses)
        ],
    }
    if mqtt_port is not None:
        config["mqtt"] = {"port": mqtt_port, "keepalive": 5, "publish_timeout": 5}
    config.update(extra)
    return config


def toml(config: dict[str, Any]) -> str:
    """Just enough TOML for our configs (tables, arrays of tables, scalars)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(v)

    lines = [f"{k} = {value(v)}" for k, v in config.items() if not isinstance(v, dict | list)]
    for key, v in config.items():
        if isinstance(v, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {value(x)}" for k, x in v.items()]
        elif isinstance(v, list):
            for item in v:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {value(x)}" for k, x in item.items() if not isinstance(x, list)]
                for k, x in item.items():
                    if isinstance(x, list):
                        for sub in x:
                            lines.append(f"[[{key}.{k}]]")
                            lines += [f"{a} = {value(b)}" for a, b in sub.items()]
    return "\n".join(lines) + "\n"
