"""Benchmark: serial RTU, side by side with pymodbus's serial client, on one pseudo-terminal.

(a) Client CPU per RTU request (read 2 holding registers of unit 1): mcptool's
    ``SerialBus`` against pymodbus's ``AsyncModbusSerialClient`` over the same pty, in
    alternating rounds, each client in this process while the simulated device runs in
    a child process (``mcptool simulate modbus --serial pty``), so only the client's
    CPU is counted. Target: at least 1.5x less CPU than pymodbus.
(b) A 1-247 unit sweep on a bus with 3 live units (the gateway profile on a serial line)
    against its lower bound: silent units x timeout. Target: at most 1.2x.

Last stdout line: one JSON object with ``vs_pymodbus_rtu_cpu`` and ``sweep_vs_bound``.

    .venv/bin/python bench/rtu.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcptool.modbus.pdu import ProbeRequest  # noqa: E402
from mcptool.modbus.scan import Scanner, ScanOptions  # noqa: E402
from mcptool.modbus.serial_line import SerialBus, SerialSettings  # noqa: E402
from mcptool.modbus.targets import resolve_targets  # noqa: E402

REQUESTS = 300  # per round and client
ROUNDS = 5
BAUD = 115200  # the line's own time per frame is small beside the client's CPU
SWEEP_TIMEOUT = 0.05


def start_simulator(profile: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcptool.cli", "simulate", "modbus", "--profile", profile,
         "--serial", "pty", "--baudrate", str(BAUD), "--parity", "N", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    line = json.loads(proc.stdout.readline())
    return proc, str(line["serial"])


async def ours(path: str) -> float:
    bus = await SerialBus.open(SerialSettings(path, BAUD, "N"))
    pdu = ProbeRequest(3, 0, 2).pdu
    try:
        started = time.process_time()
        for _ in range(REQUESTS):
            reply, _ = await bus.exchange(1, pdu, timeout=1.0)
            assert hasattr(reply, "pdu"), reply
        return (time.process_time() - started) / REQUESTS * 1e6
    finally:
        bus.close()


async def pymodbus(path: str) -> float:
    from pymodbus.client import AsyncModbusSerialClient

    client = AsyncModbusSerialClient(path, baudrate=BAUD, parity="N", timeout=1.0, retries=0)
    assert await client.connect()
    try:
        started = time.process_time()
        for _ in range(REQUESTS):
            reply = await client.read_holding_registers(0, count=2, device_id=1)
            assert not reply.isError(), reply
        return (time.process_time() - started) / REQUESTS * 1e6
    finally:
        client.close()


async def sweep(path: str) -> tuple[float, int]:
    targets = await resolve_targets([path], serial=SerialSettings("-", BAUD, "N"))
    scanner = Scanner(targets, ScanOptions(units=list(range(1, 248)), timeout=SWEEP_TIMEOUT))
    started = time.perf_counter()
    answered = [r.unit async for r in scanner.results() if r.answered]
    return time.perf_counter() - started, len(answered)


async def main() -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    proc, path = start_simulator("boiler")
    cpu: dict[str, list[float]] = {"mcptool": [], "pymodbus": []}
    try:
        for _ in range(ROUNDS):
            cpu["mcptool"].append(await ours(path))
            cpu["pymodbus"].append(await pymodbus(path))
    finally:
        proc.terminate()
        proc.wait()
    proc, path = start_simulator("gateway")
    try:
        sweep_s, live = await sweep(path)
    finally:
        proc.terminate()
        proc.wait()
    bound = (247 - live) * SWEEP_TIMEOUT
    ours_us, theirs_us = statistics.median(cpu["mcptool"]), statistics.median(cpu["pymodbus"])
    figures = {
        "requests": REQUESTS * ROUNDS,
        "cpu_us_per_request": {"mcptool": round(ours_us, 1), "pymodbus": round(theirs_us, 1)},
        "vs_pymodbus_rtu_cpu": round(theirs_us / ours_us, 2),
        "sweep_live_units": live,
        "sweep_s": round(sweep_s, 3),
        "sweep_bound_s": round(bound, 3),
        "sweep_vs_bound": round(sweep_s / bound, 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
