"""Gateway throughput: simulated devices -> gateway (spool on, MQTT QoS 1) -> Mosquitto ->
a subscriber that counts every reading and checks every device's sequence numbers.

Settings: 20 devices x 100 float32 points every 100 ms (20,000 points/s offered), a
heavier one (40 x 125 every 50 ms: 100,000/s) and a stress one (80 x 125: 200,000/s).
Each runs the real `mcptool gateway run` in its own process (so its peak RSS and CPU
share are its own), the simulated devices in another, Mosquitto as a third;
the subscriber runs here. Side by side, the baseline is what the ThingsBoard gateway
does: one request per configured point (pymodbus client) and one QoS 1 publish per
reading, no spool.

Prints progress to stderr and, as its last stdout line, one JSON object: points_per_s,
p99_ms, rss_mb, cpu_share (of the gateway process, in cores) of the heavier setting
(40 devices x 125 float32 every 50 ms, 100,000 points/s offered), lost (all settings),
the 20 x 100 setting's figures as normal_*, the stress setting's as stress_*, the
poller's own Modbus client against pymodbus's, and the baseline's points/s with the
speed-up over it. A reading is lost when its sequence number never reached the
subscriber after the gateway stopped cleanly.

    /work/venv/bin/python bench/gateway.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
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
COMMIT_INTERVAL = float(os.environ.get("BENCH_COMMIT_INTERVAL", "0.02"))
sys.path.insert(0, str(ROOT))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the simulated devices, in their own process -----------------------------------------


async def serve_devices(count: int, points: int) -> None:
    from simulators.modbus import DeviceProfile, ModbusSimulator
    from simulators.modbus import Point as SimPoint

    profiles = [
        DeviceProfile(
            name=f"dev{d}",
            points=[
                SimPoint(
                    "holding",
                    i * 2,
                    "float32",
                    value={"kind": "sine", "amplitude": 10.0, "period": 60.0 + i},
                    name=f"p{i}",
                )
                for i in range(points)
            ],
        )
        for d in range(count)
    ]
    async with ModbusSimulator(profiles) as sim:
        print(json.dumps(sim.addresses), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# -- the subscriber -----------------------------------------------------------------------


_HEAD = re.compile(
    rb'^\{"node":"[^"]*","device":"([^"]*)",(?:"kind":"telemetry",)?"seq":(\d+),"ts":(\d+),'
)


@dataclass
class Tally:
    readings: int = 0
    ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    latencies: list[tuple[float, int]] = field(default_factory=list)  # (seconds, weight)
    measuring: bool = False
    measured: int = 0

    def take(self, payload: bytes) -> None:
        # Only the message head and a count: parsing 100,000 readings a second with json
        # would make this counter the bottleneck (tests/gateway checks every field).
        now = time.time()
        head = _HEAD.match(payload)
        assert head is not None, payload[:80]
        device, first, ts = head.group(1).decode(), int(head.group(2)), int(head.group(3))
        n = payload.count(b'"quality":')
        self.readings += n
        self.ranges.setdefault(device, []).append((first, first + n - 1))
        if self.measuring:
            self.measured += n
            self.latencies.append((now - ts / 1000, n))

    def unique(self, device: str) -> int:
        total, end = 0, 0
        for lo, hi in sorted(self.ranges.get(device, [])):
            if hi > end:
                total += hi - max(lo, end + 1) + 1
                end = hi
        return total

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        total = sum(w for _, w in ordered)
        seen = 0
        for value, weight in ordered:
            seen += weight
            if seen >= 0.99 * total:
                return value
        return 0.0


async def subscribe(port: int, tally: Tally, ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-counter") as client:
        await client.subscribe("bench/+/+/telemetry", qos=1)
        ready.set()
        async for message in client.messages:
            tally.take(message.payload)  # type: ignore[arg-type]


# -- process sampling ---------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- one setting ----------------------------------------------------------------------------


def gateway_toml(
    addresses: list[list[Any]], points: int, interval: float, mqtt_port: int, spool: Path
) -> str:
    lines = [
        'node = "bench"',
        "[spool]",
        f'path = "{spool}"',
        f"commit_interval = {COMMIT_INTERVAL}",
        "[mqtt]",
        f"port = {mqtt_port}",
        'topic = "bench/{node}/{device}/telemetry"',
        'status_topic = "bench/{node}/{device}/status"',
        "window = 400",
        "[templates.meter]",
        f"interval = {interval}",
        "timeout = 2.0",
    ]
    for i in range(points):
        lines += [
            "[[templates.meter.points]]",
            f'name = "p{i}"',
            f"address = {i * 2}",
            'type = "float32"',
        ]
    for d, (host, port) in enumerate(addresses):
        lines += [
            "[[devices]]",
            f'name = "dev{d}"',
            f'host = "{host}"',
            f"port = {port}",
            'template = "meter"',
        ]
    return "\n".join(lines) + "\n"


async def run_setting(
    name: str, devices: int, points: int, interval: float, seconds: float, workdir: Path
) -> dict[str, Any]:
    log(f"[{name}] {devices} devices x {points} float32 every {interval * 1000:.0f} ms")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    mqtt_port = free_port()
    conf = workdir / f"{name}-mosquitto.conf"
    conf.write_text(
        f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"max_queued_messages 0\nlog_dest none\nuser {getpass.getuser()}\n"
    )
    broker = subprocess.Popen([mosquitto, "-c", str(conf)])
    sims = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve-devices",
        str(devices),
        str(points),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert sims.stdout is not None and sims.stdin is not None
    addresses = json.loads(await sims.stdout.readline())
    spool = workdir / f"{name}-spool.db"
    config = workdir / f"{name}.toml"
    config.write_text(gateway_toml(addresses, points, interval, mqtt_port, spool))
    await asyncio.sleep(0.3)  # mosquitto binds within milliseconds; its log is off
    tally = Tally()
    ready = asyncio.Event()
    subscriber = asyncio.create_task(subscribe(mqtt_port, tally, ready))
    await asyncio.wait_for(ready.wait(), 10)
    profile = (
        ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]]
        if "BENCH_PROFILE" in os.environ
        else []
    )
    gateway = subprocess.Popen(
        [
            sys.executable,
            *profile,
            "-m",
            "mcptool",
            "gateway",
            "run",
            "--config",
            str(config),
            "--no-status",
        ],
        cwd=ROOT,
    )
    try:
        await asyncio.sleep(3.0)  # warm-up: connections, first commits
        tally.measuring = True
        cpu0, t0, n0 = proc_cpu(gateway.pid), time.monotonic(), tally.readings
        others0 = {"devices": proc_cpu(sims.pid), "broker": proc_cpu(broker.pid)}
        bench0 = time.process_time()
        for _ in range(int(seconds)):
            await asyncio.sleep(1.0)
            log(f"[{name}] delivered {tally.readings - n0} readings")
        elapsed = time.monotonic() - t0
        delivered = tally.readings - n0
        cpu = (proc_cpu(gateway.pid) - cpu0) / elapsed
        others = {
            "devices": (proc_cpu(sims.pid) - others0["devices"]) / elapsed,
            "broker": (proc_cpu(broker.pid) - others0["broker"]) / elapsed,
            "subscriber": (time.process_time() - bench0) / elapsed,
        }
        rss = proc_peak_rss_mb(gateway.pid)
        tally.measuring = False
        gateway.send_signal(signal.SIGTERM)  # a clean stop delivers what is pending
        await asyncio.get_running_loop().run_in_executor(None, gateway.wait, 30)
        with sqlite3.connect(spool) as db:
            produced = {n: s - 1 for n, s in db.execute("SELECT name, next_seq FROM devices")}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if all(tally.unique(d) >= last for d, last in produced.items()):
                break
            await asyncio.sleep(0.1)
        lost = sum(max(0, last - tally.unique(d)) for d, last in produced.items())
    finally:
        if gateway.poll() is None:
            gateway.kill()
        subscriber.cancel()
        await asyncio.gather(subscriber, return_exceptions=True)
        sims.stdin.close()
        await sims.wait()
        broker.terminate()
        broker.wait(10)
    result = {
        "points_per_s": round(delivered / elapsed),
        "offered_per_s": round(devices * points / interval),
        "p99_ms": round(tally.p99() * 1000, 1),
        "rss_mb": round(rss, 1),
        "cpu_share": round(cpu, 2),
        "cpu_others": {k: round(v, 2) for k, v in others.items()},
        "produced": sum(produced.values()),
        "lost": lost,
    }
    log(f"[{name}] {result}")
    return result


# -- the baseline: one request per point, one publish per reading ------------------------


async def run_baseline(devices: int, points: int, interval: float, seconds: float) -> float:
    from pymodbus.client import AsyncModbusTcpClient

    log(f"[baseline] per-point reads + per-reading publishes, {devices} x {points}")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    mqtt_port = free_port()
    broker = subprocess.Popen(
        [mosquitto, "-p", str(mqtt_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    sims = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve-devices",
        str(devices),
        str(points),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert sims.stdout is not None and sims.stdin is not None
    addresses = json.loads(await sims.stdout.readline())
    await asyncio.sleep(0.3)
    delivered = 0
    stop = asyncio.Event()

    async def device(host: str, port: int, publisher: aiomqtt.Client, name: str) -> None:
        nonlocal delivered
        client = AsyncModbusTcpClient(host, port=port, timeout=2, retries=0)
        await client.connect()
        try:
            while not stop.is_set():
                started = time.monotonic()
                for i in range(points):
                    reply = await client.read_holding_registers(i * 2, count=2, device_id=1)
                    value = client.convert_from_registers(reply.registers, client.DATATYPE.FLOAT32)
                    payload = json.dumps({"device": name, "point": f"p{i}", "value": value})
                    await publisher.publish(f"base/{name}/p{i}", payload, qos=1)
                    delivered += 1
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
        finally:
            client.close()

    try:
        async with aiomqtt.Client("127.0.0.1", mqtt_port) as publisher:
            tasks = [
                asyncio.create_task(device(h, p, publisher, f"dev{d}"))
                for d, (h, p) in enumerate(addresses)
            ]
            await asyncio.sleep(1.0)
            n0, t0 = delivered, time.monotonic()
            await asyncio.sleep(seconds)
            rate = (delivered - n0) / (time.monotonic() - t0)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        sims.stdin.close()
        await sims.wait()
        broker.terminate()
        broker.wait(10)
    log(f"[baseline] {rate:.0f} points/s")
    return rate


# -- the poller's own Modbus client against pymodbus's, same reads, same device ----------


async def run_client_comparison(seconds: float) -> dict[str, float]:
    from pymodbus.client import AsyncModbusTcpClient

    from mcptool.modbus.poller import DevicePoller, DeviceSpec, PollerHooks
    from mcptool.modbus.registermap import DataType, Point, Table

    sims = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve-devices",
        "1",
        "100",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert sims.stdout is not None and sims.stdin is not None
    (host, port), *_ = json.loads(await sims.stdout.readline())
    points = tuple(Point(f"p{i}", Table.HOLDING, i * 2, DataType.FLOAT32) for i in range(100))
    spec = DeviceSpec("dev0", host, points, port=port)
    rates: dict[str, float] = {}
    try:
        poller = DevicePoller(spec, PollerHooks())
        await poller.connect()
        polls, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            await poller.poll_once()
            polls += 1
        rates["own_client_polls_per_s"] = polls / (time.monotonic() - t0)
        await poller.close()

        client = AsyncModbusTcpClient(host, port=port, timeout=3, retries=0)
        await client.connect()
        plan = spec.plan()
        polls, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            for request in plan:
                reply = await client.read_holding_registers(
                    request.address, count=request.count, device_id=1
                )
                client.convert_from_registers(reply.registers, client.DATATYPE.FLOAT32)
            polls += 1
        rates["pymodbus_polls_per_s"] = polls / (time.monotonic() - t0)
        client.close()
    finally:
        sims.stdin.close()
        await sims.wait()
    log(
        f"[client] 100 float32 in 2 reads: own client {rates['own_client_polls_per_s']:.0f} "
        f"polls/s, pymodbus client {rates['pymodbus_polls_per_s']:.0f} polls/s"
    )
    return rates


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        clients = await run_client_comparison(2.0)
        baseline = await run_baseline(20, 100, 0.1, min(seconds, 5))
        normal = await run_setting("20x100@100ms", 20, 100, 0.1, seconds, workdir)
        heavy = await run_setting("40x125@50ms", 40, 125, 0.05, seconds, workdir)
        stress = await run_setting("80x125@50ms", 80, 125, 0.05, seconds, workdir)
    # the headline is the heavier setting (what the gateway can carry); the 20 x 100
    # setting offers only 20,000 points/s, so its points/s is the offered rate
    print(
        json.dumps(
            {
                "points_per_s": heavy["points_per_s"],
                "p99_ms": heavy["p99_ms"],
                "rss_mb": max(heavy["rss_mb"], normal["rss_mb"]),
                "lost": normal["lost"] + heavy["lost"] + stress["lost"],
                "cpu_share": heavy["cpu_share"],
                "setting": "40 devices x 125 float32 every 50 ms",
                "offered_per_s": heavy["offered_per_s"],
                "cpu_others": heavy["cpu_others"],
                "normal_points_per_s": normal["points_per_s"],
                "normal_p99_ms": normal["p99_ms"],
                "normal_rss_mb": normal["rss_mb"],
                "normal_cpu_share": normal["cpu_share"],
                "normal_lost": normal["lost"],
                "stress_points_per_s": stress["points_per_s"],
                "stress_offered_per_s": stress["offered_per_s"],
                "stress_p99_ms": stress["p99_ms"],
                "stress_rss_mb": stress["rss_mb"],
                "stress_cpu_share": stress["cpu_share"],
                "baseline_points_per_s": round(baseline),
                "speedup_vs_baseline": round(heavy["points_per_s"] / max(baseline, 1), 1),
                "own_client_polls_per_s": round(clients["own_client_polls_per_s"]),
                "pymodbus_client_polls_per_s": round(clients["pymodbus_polls_per_s"]),
                "own_client_speedup": round(
                    clients["own_client_polls_per_s"] / max(clients["pymodbus_polls_per_s"], 1), 1
                ),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve-devices", nargs=2, type=int, metavar=("COUNT", "POINTS"))
    args = parser.parse_args()
    if args.serve_devices:
        asyncio.run(serve_devices(*args.serve_devices))
    else:
        asyncio.run(main(args.seconds))
