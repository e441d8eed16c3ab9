"""Benchmark of the MCP link on loopback, in one run, against its baseline.

1. Acknowledged DATA frames per second over one link (256-byte payloads), node in this
   process, hub (`mcptool hub`) in another; next to raw TCP with the same framing and the
   same cumulative ACKs but no link machinery (no auth, no state machine, no futures),
   which is the limit. Runs alternate in pairs; medians are reported, because the
   machine is shared and noisy.
2. Time to detect a dead peer: the link goes silent through a proxy that stops
   forwarding; time from the stall to the node leaving ESTABLISHED, against the bound
   heartbeat x dead_after.
3. 1,000 concurrent authenticated links held by one hub process with heartbeats for
   several intervals; none may drop.
4. Handshakes per second completed by 10 known nodes (connect, authenticate, session up,
   close; again and again) against `mcptool hub` with its default limits, calm and while
   256 strangers from 16 loopback addresses and a slowloris churn
   (simulators/mcp/flood.py, a process of its own): first strangers reopened when the hub
   cuts them (issue 13's flood), then ones reopened the moment the hub says REJECT
   (``--eager``). Calm and flood rounds alternate; medians.

Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcptool.frame import Ack, Data, FrameDecoder, MessageType  # noqa: E402
from mcptool.link import ClientState, LinkClient  # noqa: E402
from simulators.mcp import FaultProxy, McpPeer  # noqa: E402

PAYLOAD = b"x" * 256
WINDOW = 256
RUN_SECONDS = 1.5
ROUNDS = 5
LINKS = 1000
KNOWN = 10
HANDSHAKE_SECONDS = 2.0
FLOOD_ROUNDS = 5


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def raise_nofile(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# ---------------------------------------------------------------- raw baseline


class RawServer(asyncio.Protocol):
    """Decode frames, answer each read with one cumulative ACK: the link's wire work only."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.decoder = FrameDecoder()

    def data_received(self, data: bytes) -> None:
        last = -1
        for frame in self.decoder.feed(data):
            if frame.type is MessageType.DATA:
                last = int.from_bytes(frame.payload[:8], "big")
        if last >= 0:
            self.transport.write(Ack(last).encode())  # type: ignore[attr-defined]


async def serve_raw() -> None:
    server = await asyncio.get_running_loop().create_server(RawServer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


class RawClient(asyncio.Protocol):
    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.acked = 0
        self.decoder = FrameDecoder()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.pump()

    def pump(self) -> None:
        room = min(WINDOW - (self.sent - self.acked), self.total - self.sent)
        if room > 0:
            frames = [Data(self.sent + n + 1, PAYLOAD).encode() for n in range(room)]
            self.sent += room
            self.transport.write(b"".join(frames))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            self.acked = int.from_bytes(frame.payload, "big")
        if self.acked >= self.total:
            if not self.done.done():
                self.done.set_result(None)
        else:
            self.pump()


async def raw_rate(port: int, total: int) -> float:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    transport, client = await loop.create_connection(lambda: RawClient(total), "127.0.0.1", port)
    await client.done
    elapsed = time.perf_counter() - started
    transport.close()
    return total / elapsed


async def link_rate(url: str, node: str, key: bytes, total: int) -> float:
    async with LinkClient(url, node, key) as link:
        started = time.perf_counter()
        submit = link.submit
        future = None
        for _ in range(total):
            future = await submit(PAYLOAD)
        assert future is not None
        await future
        return total / (time.perf_counter() - started)


# ---------------------------------------------------------------- helpers


def write_keys(directory: Path, count: int) -> tuple[Path, dict[str, bytes]]:
    keys = {f"node-{n}": secrets.token_hex(16).encode() for n in range(count)}
    path = directory / "keys"
    path.write_text("".join(f"{node} {key.decode()}\n" for node, key in keys.items()))
    os.chmod(path, 0o600)
    return path, keys


def start_hub(keys: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcptool",
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--quiet",
            "--keys",
            str(keys),
            *args,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "hub listening on" not in line:
        raise SystemExit(f"hub did not start: {line!r}")
    # The hub logs every session up and down: drain it, or a full pipe stops the hub.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return process, line.split()[3]


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


# ---------------------------------------------------------------- the three measurements


async def throughput(keys_path: Path, keys: dict[str, bytes]) -> tuple[float, float, float]:
    raw = subprocess.Popen(
        [sys.executable, __file__, "--raw-server"], stdout=subprocess.PIPE, text=True
    )
    hub, url = start_hub(keys_path, "--window", str(WINDOW))
    try:
        assert raw.stdout is not None
        port = int(raw.stdout.readline())
        node, key = next(iter(keys.items()))
        # Size the runs from a short probe so that each takes about RUN_SECONDS.
        probe = await link_rate(url, node, key, 20_000)
        total = max(20_000, int(probe * RUN_SECONDS))
        raws, links = [], []
        for round_ in range(ROUNDS):
            raws.append(await raw_rate(port, total))
            links.append(await link_rate(url, node, key, total))
            say(
                f"  round {round_ + 1}: raw TCP {raws[-1]:,.0f} frames/s,"
                f" link {links[-1]:,.0f} acked frames/s ({links[-1] / raws[-1]:.2f}x)"
            )
        # Medians, and the ratio as the median of each round's pair: a neighbour's burst
        # of CPU then skews one round, not the figure.
        ratio = statistics.median(link / raw for link, raw in zip(links, raws, strict=True))
        return statistics.median(links), statistics.median(raws), ratio
    finally:
        stop(hub)
        stop(raw)  # type: ignore[arg-type]


async def dead_peer(keys: dict[str, bytes]) -> tuple[float, float]:
    interval, dead_after = 0.5, 3
    bound = interval * dead_after
    worst = 0.0
    async with McpPeer(keys, heartbeat_interval=interval, dead_after=dead_after) as hub:
        node, key = next(iter(keys.items()))
        for attempt in range(3):
            async with FaultProxy(*hub.address) as proxy:
                link = LinkClient(proxy.url, node, key, reconnect=False)
                await link.start(5)
                await link.send(b"alive")
                # Stall at a random point of the heartbeat cycle.
                await asyncio.sleep(interval * (0.2 + 0.3 * attempt))
                loop = asyncio.get_running_loop()
                stalled = loop.time()
                proxy.stall()
                while link.state is ClientState.ESTABLISHED:
                    await asyncio.sleep(0.001)
                detected = loop.time() - stalled
                worst = max(worst, detected)
                say(f"  stall {attempt + 1}: detected after {detected:.3f} s (bound {bound} s)")
                await link.close()
    return worst, bound


async def many_links(keys_path: Path, keys: dict[str, bytes]) -> tuple[int, int]:
    interval = 1.0
    hub, url = start_hub(
        keys_path, "--heartbeat", str(interval), "--dead-after", "3", "--window", "16"
    )
    drops = 0
    links: list[LinkClient] = []

    def on_state(event: object) -> None:
        nonlocal drops
        if getattr(event, "old", None) is ClientState.ESTABLISHED:
            drops += 1

    try:
        nodes = list(keys.items())[:LINKS]
        started = time.perf_counter()
        for first in range(0, len(nodes), 100):
            batch = [
                LinkClient(url, node, key, on_state_change=on_state)
                for node, key in nodes[first : first + 100]
            ]
            await asyncio.gather(*(link.start(30) for link in batch))
            links.extend(batch)
        say(f"  {len(links)} links up in {time.perf_counter() - started:.1f} s")
        hold = 5 * interval
        await asyncio.sleep(hold)  # holding the links IS the measurement
        held = sum(link.state is ClientState.ESTABLISHED for link in links)
        status = await links[0].request("status")
        on_hub = len(status.data["nodes"])
        say(f"  after {hold:g} s of heartbeats: {held} up, hub sees {on_hub}, {drops} drops")
        return min(held, on_hub), drops
    finally:
        await asyncio.gather(*(link.close() for link in links), return_exceptions=True)
        stop(hub)


async def known_handshakes(url: str, keys: dict[str, bytes]) -> tuple[float, int]:
    """Handshakes/s of KNOWN nodes looping connect -> session up -> close; and failures."""
    done = failed = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANDSHAKE_SECONDS

    async def node_loop(node: str, key: bytes) -> None:
        nonlocal done, failed
        while loop.time() < deadline:
            link = LinkClient(url, node, key, reconnect=False)
            try:
                await link.start(10)
                done += 1
            except Exception:
                failed += 1
            finally:
                await link.close()

    started = time.perf_counter()
    await asyncio.gather(*(node_loop(n, k) for n, k in list(keys.items())[:KNOWN]))
    return done / (time.perf_counter() - started), failed


async def start_flood(url: str, *options: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators.mcp.flood",
        url.removeprefix("mcp://"),
        "--sockets",
        "256",
        "--sources",
        "127.0.0.2-17",
        "--slowloris",
        "2",
        "--duration",
        "60",  # a safety net: it is stopped after each round
        *options,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(1.0)  # let the strangers fill the hub's slots before measuring
    return process


async def stop_flood(process: asyncio.subprocess.Process) -> dict[str, int]:
    process.terminate()
    out, _ = await process.communicate()
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


async def handshakes_under_flood(keys_path: Path, keys: dict[str, bytes]) -> dict[str, float]:
    hub, url = start_hub(keys_path)
    calm: list[float] = []
    flooded: dict[str, list[float]] = {"": [], "--eager": []}
    failures = 0
    try:
        for round_ in range(FLOOD_ROUNDS):
            rate, failed = await known_handshakes(url, keys)
            calm.append(rate)
            failures += failed
            for mode, rates in flooded.items():
                flood = await start_flood(url, *([mode] if mode else []))
                rate, failed = await known_handshakes(url, keys)
                stats = await stop_flood(flood)
                rates.append(rate)
                failures += failed
                say(
                    f"  round {round_ + 1}: calm {calm[-1]:.0f}/s,"
                    f" {'eager ' if mode else ''}flood {rate:.0f}/s ({failed} failed;"
                    f" strangers opened {stats['opened'] / (HANDSHAKE_SECONDS + 1):.0f}/s)"
                )
    finally:
        stop(hub)
    # Ratios as medians of each round's pair, like the throughput's: the machine is shared.
    return {
        "known_handshakes_per_s": statistics.median(calm),
        "known_handshakes_under_flood_per_s": statistics.median(flooded[""]),
        "flood_vs_calm": statistics.median(f / c for f, c in zip(flooded[""], calm, strict=True)),
        "known_handshakes_under_eager_flood_per_s": statistics.median(flooded["--eager"]),
        "eager_flood_vs_calm": statistics.median(
            f / c for f, c in zip(flooded["--eager"], calm, strict=True)
        ),
        "known_handshake_failures": failures,
    }


async def main() -> None:
    raise_nofile(4 * LINKS + 256)
    with tempfile.TemporaryDirectory() as tmp:
        keys_path, keys = write_keys(Path(tmp), LINKS)
        say("1/4 throughput: 256-byte DATA frames, acknowledged, one link")
        link_fps, raw_fps, ratio = await throughput(keys_path, keys)
        say("2/4 dead-peer detection through a stalled proxy")
        detect, bound = await dead_peer(dict(list(keys.items())[:1]))
        say(f"3/4 {LINKS} concurrent links held with heartbeats by one hub process")
        held, drops = await many_links(keys_path, keys)
        say(f"4/4 handshakes of {KNOWN} known nodes, calm and while 256 strangers flood")
        handshakes = await handshakes_under_flood(keys_path, keys)
    result = {
        "frames_per_s": round(link_fps),
        "raw_tcp_frames_per_s": round(raw_fps),
        "vs_raw_tcp": round(ratio, 3),
        "dead_peer_detect_s": round(detect, 3),
        "dead_peer_bound_s": bound,
        "links_held": held,
        "links_dropped": drops,
        "payload_bytes": len(PAYLOAD),
        "window": WINDOW,
        "known_handshakes_per_s": round(handshakes["known_handshakes_per_s"], 1),
        "known_handshakes_under_flood_per_s": round(
            handshakes["known_handshakes_under_flood_per_s"], 1
        ),
        "flood_vs_calm": round(handshakes["flood_vs_calm"], 3),
        "known_handshakes_under_eager_flood_per_s": round(
            handshakes["known_handshakes_under_eager_flood_per_s"], 1
        ),
        "eager_flood_vs_calm": round(handshakes["eager_flood_vs_calm"], 3),
        "known_handshake_failures": handshakes["known_handshake_failures"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1:] == ["--raw-server"]:
        asyncio.run(serve_raw())
    else:
        asyncio.run(main())
