"""Requests/s the Modbus simulator serves, side by side with pymodbus's stock TCP server.

Both servers hold the same data (100 holding registers, unit 1) and run in their own
process; one client process (a bare asyncio protocol, so the client costs the same for
both and is not a Modbus library's overhead) reads 10 registers per request, one request
in flight per connection, as a polling master does. Measured: one connection, then 8
concurrent connections, then 16 requests pipelined on one connection (what the server
itself can do once the round trip is out of the way), alternating servers over four
rounds (the machine is shared and noisy); each figure is the best of its rounds.

Run: /work/venv/bin/python bench/simulator.py   (last stdout line: JSON)
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGISTERS = [(i * 37) & 0xFFFF for i in range(100)]
SECONDS = 1.5
ROUNDS = 4
COUNT = 10
# (name, connections, requests in flight per connection)
MODES = (("1conn", 1, 1), ("8conn", 8, 1), ("pipelined", 1, 16))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- servers (run in a child process: `simulator.py --serve ours|pymodbus`) ----------------


async def serve_ours() -> None:
    sys.path.insert(0, str(ROOT))
    from simulators.modbus import DeviceProfile, ModbusSimulator, Point

    profile = DeviceProfile(
        name="bench",
        points=[Point("holding", i, "uint16", value=v) for i, v in enumerate(REGISTERS)],
    )
    async with ModbusSimulator([profile]) as sim:
        print(sim.address[1], flush=True)
        await asyncio.Event().wait()


async def serve_pymodbus() -> None:
    import socket

    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    # SimData/SimDevice are what 3.16 recommends (the old datastore classes are deprecated).
    device = SimDevice(
        id=1,
        simdata=(
            [SimData(0, count=100, values=False, datatype=DataType.BITS)],
            [SimData(0, count=100, values=False, datatype=DataType.BITS)],
            [SimData(0, values=REGISTERS, datatype=DataType.REGISTERS)],
            [SimData(0, values=REGISTERS, datatype=DataType.REGISTERS)],
        ),
    )
    with socket.socket() as probe:  # pymodbus cannot report an ephemeral port: pick one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    print(port, flush=True)
    await asyncio.Event().wait()


# -- client ---------------------------------------------------------------------------------


class _Poller(asyncio.Protocol):
    """One connection, ``depth`` requests in flight (1: send, wait for the reply, send again).

    Every reply is checked: its transaction id must be the oldest one outstanding.
    """

    def __init__(self, deadline: float, done: asyncio.Future[int], depth: int = 1) -> None:
        self.deadline = deadline
        self.done = done
        self.depth = depth
        self.tid = 0
        self.outstanding: deque[int] = deque()
        self.count = 0
        self.buf = bytearray()
        self.expect = 9 + 2 * COUNT
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send(self.depth)

    def _send(self, n: int) -> None:
        frames = []
        for _ in range(n):
            self.tid = (self.tid + 1) & 0xFFFF
            self.outstanding.append(self.tid)
            frames.append(struct.pack(">HHHBBHH", self.tid, 0, 6, 1, 3, 0, COUNT))
        self.transport.write(b"".join(frames))  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        got = 0
        while len(self.buf) >= self.expect:
            reply = bytes(self.buf[: self.expect])
            del self.buf[: self.expect]
            tid = struct.unpack_from(">H", reply)[0]
            if tid != self.outstanding.popleft() or reply[7] != 3:
                self.done.set_exception(RuntimeError(f"bad reply {reply.hex()}"))
                self.transport.close()  # type: ignore[union-attr]
                return
            got += 1
        if not got:
            return
        self.count += got
        if time.perf_counter() >= self.deadline:
            if not self.done.done():
                self.done.set_result(self.count)
            self.transport.close()  # type: ignore[union-attr]
            return
        self._send(got)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed early"))


async def measure(port: int, connections: int, seconds: float, depth: int = 1) -> float:
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    deadline = start + seconds
    futures = [loop.create_future() for _ in range(connections)]
    for fut in futures:
        await loop.create_connection(lambda f=fut: _Poller(deadline, f, depth), "127.0.0.1", port)
    counts = await asyncio.gather(*futures)
    return sum(counts) / (time.perf_counter() - start)


async def pipelined_answers(port: int, depth: int) -> float:
    """How many of ``depth`` requests sent in one write get a reply within a second."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"".join(struct.pack(">HHHBBHH", t, 0, 6, 1, 3, 0, COUNT) for t in range(1, depth + 1))
    )
    answered = 0
    try:
        while answered < depth:
            await asyncio.wait_for(reader.readexactly(9 + 2 * COUNT), 1.0)
            answered += 1
    except (TimeoutError, asyncio.IncompleteReadError):
        pass
    writer.close()
    return answered


def start_server(kind: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip():
        proc.kill()
        raise RuntimeError(f"{kind} server did not start")
    return proc, int(line)


async def bench() -> dict[str, object]:
    results: dict[str, dict[str, float]] = {"ours": {}, "pymodbus": {}}
    servers = {kind: start_server(kind) for kind in ("ours", "pymodbus")}
    ports = {kind: port for kind, (_, port) in servers.items()}
    try:
        for port in ports.values():
            await measure(port, 1, 0.3)  # warm-up
        results["pymodbus"]["pipelined_answered"] = await pipelined_answers(ports["pymodbus"], 16)
        log(
            f"pymodbus answered {results['pymodbus']['pipelined_answered']:.0f} of 16 "
            "requests sent in one write"
        )
        # Both servers stay up (an idle one costs nothing); each measurement alternates
        # between them, in a different order every round, so noise hits both alike.
        for rnd in range(ROUNDS):
            for key, conns, depth in MODES:
                kinds = ["ours", "pymodbus"] if depth == 1 else ["ours"]
                if rnd % 2:
                    kinds.reverse()
                for kind in kinds:
                    rate = await measure(ports[kind], conns, SECONDS, depth)
                    results[kind][key] = max(results[kind].get(key, 0.0), rate)
                    log(f"round {rnd + 1}: {kind:8s} {key:10s}: {rate:8.0f} req/s")
    finally:
        for proc, _ in servers.values():
            proc.kill()
            proc.wait()
    ours, base = results["ours"], results["pymodbus"]
    ratio1 = ours["1conn"] / base["1conn"]
    ratio8 = ours["8conn"] / base["8conn"]
    return {
        "req_per_s": round(ours["1conn"]),
        "req_per_s_8conn": round(ours["8conn"]),
        "pymodbus_req_per_s": round(base["1conn"]),
        "pymodbus_req_per_s_8conn": round(base["8conn"]),
        "vs_pymodbus_server": round(min(ratio1, ratio8), 2),
        "vs_pymodbus_server_1conn": round(ratio1, 2),
        "vs_pymodbus_server_8conn": round(ratio8, 2),
        "req_per_s_pipelined16": round(ours["pipelined"]),
        # pymodbus 3.16's server answers only the first of several requests that arrive
        # in one read, so there is no pipelined rate to compare with.
        "pymodbus_pipelined16_answered": f"{base['pipelined_answered']:.0f}/16",
        "registers_per_request": COUNT,
        "client": "raw asyncio in its own process; 1 request in flight per connection "
        "(pipelined16: 16 in flight on 1 connection)",
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve = serve_ours if sys.argv[2] == "ours" else serve_pymodbus
        asyncio.run(serve())
        return
    result = asyncio.run(bench())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
