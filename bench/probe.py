"""Benchmark: probe throughput and scan time, against simulated devices, side by side.

(a) Probes per second (connect, read one holding register, close) against one
    simulated device, for three clients measured in alternating rounds in one run:
    mcptool's probe (full outcome classification), a probe written with pymodbus's
    AsyncModbusTcpClient, and a bare asyncio socket that sends the fixed 12-byte request
    and reads the 11-byte reply (the limit). Sequential and 64 in flight. A fourth,
    blocking client (plain socket calls, no event loop) measures the floor: about what
    the kernel's TCP work for one probe costs this process (the bare asyncio socket at
    64 in flight comes within a few percent of it, never far below). Its CPU per probe
    against the pymodbus probe's is about the highest ratio to pymodbus that any
    one-process client can reach once the client is the bottleneck.
(b) A scan of 1,000 loopback targets (one address each in 127.1.0.0/22) mixing
    answering simulated devices, refused ports and silent listeners, against its lower
    bound: silent targets / concurrency x timeout.

The simulators run in a child process so that client and server do not share one
event loop. Last stdout line: one JSON object.

    /work/venv/bin/python bench/probe.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcptool.modbus.connection import Outcome  # noqa: E402
from mcptool.modbus.pdu import ProbeRequest  # noqa: E402
from mcptool.modbus.probe import probe_request  # noqa: E402
from mcptool.modbus.scan import Scanner, ScanOptions  # noqa: E402
from mcptool.modbus.targets import resolve_targets  # noqa: E402

REQUEST = bytes.fromhex("000100000006010300000001")
ROUNDS = 12
ROUND_SECONDS = 0.4
SCAN_TARGETS = 1000
SCAN_ANSWERING = 300
SCAN_REFUSED = 200
SCAN_SILENT = SCAN_TARGETS - SCAN_ANSWERING - SCAN_REFUSED
SCAN_CONCURRENCY = 100
SCAN_TIMEOUT = 0.5


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def scan_address(i: int) -> str:
    return f"127.1.{i // 250}.{i % 250 + 1}"


# -- the child process: simulated devices ---------------------------------------------


async def serve(port: int, answering: int) -> None:
    from simulators.modbus import ModbusSimulator, load_profile

    profile = load_profile("boiler")
    sims = [ModbusSimulator([profile], host="127.0.0.1", port=0)]
    sims += [ModbusSimulator([profile], host=scan_address(i), port=port) for i in range(answering)]
    for sim in sims:
        await sim.start()
    print(json.dumps({"probe_port": sims[0].address[1]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed


# -- the three probes -----------------------------------------------------------------

PROBE = ProbeRequest()


async def mcptool_probe(port: int) -> bool:
    result = await probe_request("127.0.0.1", port, PROBE, connect_timeout=3, timeout=3)
    return result.outcome is Outcome.OK


async def pymodbus_probe(port: int) -> bool:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    try:
        if not await client.connect():
            return False
        reply = await client.read_holding_registers(0, count=1, device_id=1)
        return not reply.isError()
    finally:
        client.close()


async def raw_probe(port: int) -> bool:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, REQUEST)
        reply = b""
        while len(reply) < 11:
            data = await loop.sock_recv(sock, 256)
            if not data:
                return False
            reply += data
        return True
    finally:
        sock.close()


def floor_rate(port: int) -> tuple[float, float]:
    """Probes per second and CPU microseconds per probe of a blocking socket client.

    Blocking calls stall the event loop on purpose: nothing else runs in it meanwhile,
    and a loop would only add cost to what this measures.
    """
    done = 0
    end = time.perf_counter() + ROUND_SECONDS
    started, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() < end:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(REQUEST)
            reply = b""
            while len(reply) < 11:
                data = sock.recv(256)
                if not data:
                    raise RuntimeError("floor: the simulator closed without a reply")
                reply += data
        done += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return done / elapsed, cpu / done * 1e6


async def rate(
    probe: Callable[[int], Awaitable[bool]], port: int, concurrency: int
) -> tuple[float, float]:
    """Probes per second, and this process's CPU microseconds per probe."""
    done = failed = 0
    end = time.perf_counter() + ROUND_SECONDS

    async def worker() -> None:
        nonlocal done, failed
        while time.perf_counter() < end:
            if await probe(port):
                done += 1
            else:
                failed += 1

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if failed:
        raise RuntimeError(f"{probe.__name__}: {failed} probes failed")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return done / elapsed, cpu / done * 1e6


Figures = dict[str, dict[str, list[float]]]


async def throughput(port: int) -> tuple[Figures, Figures, Figures]:
    """Rates, CPU per probe, and per-round ratios of mcptool to each other client.

    The three clients run back to back within each round and ratios are taken per
    round, so that load from other processes on this shared machine cancels out.
    """
    probes = {"mcptool": mcptool_probe, "pymodbus": pymodbus_probe, "raw": raw_probe}
    modes = (("seq", 1), ("c64", 64))
    rates: Figures = {name: {m: [] for m, _ in modes} for name in [*probes, "floor"]}
    cpu: Figures = {name: {m: [] for m, _ in modes} for name in [*probes, "floor"]}
    ratios: Figures = {name: {m: [] for m, _ in modes} for name in ("pymodbus", "raw")}
    for round_ in range(ROUNDS):
        for mode, concurrency in modes:
            names = list(probes)
            shift = round_ % len(names)  # rotate who goes first: no order bias
            for name in names[shift:] + names[:shift]:
                value, us = await rate(probes[name], port, concurrency)
                rates[name][mode].append(value)
                cpu[name][mode].append(us)
                log(
                    f"round {round_ + 1} {mode:>3} {name:>8}: {value:7.0f} probes/s, "
                    f"{us:5.0f} us client CPU/probe"
                )
            for other in ratios:
                ratios[other][mode].append(rates["mcptool"][mode][-1] / rates[other][mode][-1])
        value, us = floor_rate(port)
        rates["floor"]["seq"].append(value)
        cpu["floor"]["seq"].append(us)
        log(
            f"round {round_ + 1} seq    floor: {value:7.0f} probes/s, {us:5.0f} us client CPU/probe"
        )
    return rates, cpu, ratios


# -- the scan -------------------------------------------------------------------------


def silent_listeners(port: int) -> list[socket.socket]:
    # Listening sockets that never accept: the kernel completes the handshake, nobody
    # ever reads the request, so each probe waits out its timeout.
    sockets = []
    for i in range(SCAN_ANSWERING + SCAN_REFUSED, SCAN_TARGETS):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((scan_address(i), port))
        sock.listen(8)
        sockets.append(sock)
    return sockets


async def scan_once(port: int) -> tuple[float, dict[str, int]]:
    order = list(range(SCAN_TARGETS))
    random.Random(7).shuffle(order)  # a plant's addresses are not sorted by behaviour
    targets = await resolve_targets([f"{scan_address(i)}:{port}" for i in order])
    options = ScanOptions(
        concurrency=SCAN_CONCURRENCY, timeout=SCAN_TIMEOUT, connect_timeout=SCAN_TIMEOUT
    )
    scanner = Scanner(targets, options)
    started = time.perf_counter()
    async for _ in scanner.results():
        pass
    return time.perf_counter() - started, dict(scanner.summary.outcomes)


def free_port_on_scan_addresses() -> int:
    probe = socket.socket()
    probe.bind((scan_address(0), 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


async def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))
    logging.disable(logging.CRITICAL)  # pymodbus logs every refused connect
    scan_port = free_port_on_scan_addresses()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(scan_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
        if not line:
            raise SystemExit("the simulator process did not start")
        probe_port = json.loads(line)["probe_port"]
        log(f"simulators up: probe target 127.0.0.1:{probe_port}, scan port {scan_port}")

        rates, cpu, ratios = await throughput(probe_port)

        listeners = silent_listeners(scan_port)
        bound = SCAN_SILENT / SCAN_CONCURRENCY * SCAN_TIMEOUT
        times = []
        for run in range(3):
            seconds, outcomes = await scan_once(scan_port)
            times.append(seconds)
            log(f"scan {run + 1}: {seconds:.2f} s, bound {bound:.2f} s, {outcomes}")
        for sock in listeners:
            sock.close()
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(10)

    expected = {"ok": SCAN_ANSWERING, "refused": SCAN_REFUSED, "timeout": SCAN_SILENT}
    if outcomes != expected:
        raise SystemExit(f"scan outcomes {outcomes} differ from the set-up {expected}")
    scan_s = statistics.median(times)

    def med(values: list[float], digits: int = 0) -> float:
        return round(statistics.median(values), digits)

    figures = {
        "probe_per_s": med(rates["mcptool"]["c64"]),
        "probe_per_s_sequential": med(rates["mcptool"]["seq"]),
        "pymodbus_probe_per_s": med(rates["pymodbus"]["c64"]),
        "pymodbus_probe_per_s_sequential": med(rates["pymodbus"]["seq"]),
        "raw_socket_per_s": med(rates["raw"]["c64"]),
        "raw_socket_per_s_sequential": med(rates["raw"]["seq"]),
        "vs_pymodbus_probe": med(ratios["pymodbus"]["c64"], 2),
        "vs_pymodbus_probe_sequential": med(ratios["pymodbus"]["seq"], 2),
        "vs_raw_socket": med(ratios["raw"]["c64"], 2),
        "vs_raw_socket_sequential": med(ratios["raw"]["seq"], 2),
        "client_cpu_us_per_probe": {name: med(v["c64"]) for name, v in cpu.items() if v["c64"]},
        "vs_pymodbus_probe_cpu": round(
            statistics.median(cpu["pymodbus"]["c64"]) / statistics.median(cpu["mcptool"]["c64"]), 2
        ),
        # Whether 64 in flight saturated the client's core (1.0: the client is the
        # bottleneck, so the CPU per probe decides the ratios).
        "client_core_share_c64": {
            name: round(statistics.median(v["c64"]) * med(cpu[name]["c64"]) / 1e6, 2)
            for name, v in rates.items()
            if v["c64"]
        },
        "floor_probe_per_s_sequential": med(rates["floor"]["seq"]),
        "floor_cpu_us_per_probe": med(cpu["floor"]["seq"]),
        # The most any one-process client could gain on the pymodbus probe here: its
        # CPU per probe over the floor's (64 in flight), its latency over the floor's
        # (sequential).
        "vs_pymodbus_ceiling": round(
            statistics.median(cpu["pymodbus"]["c64"]) / statistics.median(cpu["floor"]["seq"]), 2
        ),
        "vs_pymodbus_ceiling_sequential": round(
            statistics.median(rates["floor"]["seq"]) / statistics.median(rates["pymodbus"]["seq"]),
            2,
        ),
        "scan_targets": SCAN_TARGETS,
        "scan_s": round(scan_s, 3),
        "scan_bound_s": round(bound, 3),
        "scan_vs_bound": round(scan_s / bound, 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        asyncio.run(serve(int(sys.argv[2]), SCAN_ANSWERING))
    else:
        asyncio.run(main())
