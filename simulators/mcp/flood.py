"""Strangers at a hub's door: sockets that never authenticate, reopened as fast as cut.

``python -m simulators.mcp.flood HOST:PORT --sockets 256 --sources 127.0.0.2-17``
keeps ``--sockets`` connections open that say nothing, each reopened the moment the hub
cuts it (with ``--eager``, the moment the hub says anything, e.g. REJECT), plus
``--slowloris`` connections that send a HELLO one byte at a time, spread over the
``--sources`` loopback addresses. It runs in a process of its own, so that the flood
competes with the hub for the machine and not for its event loop, and prints one JSON
line when stopped (SIGTERM/SIGINT or ``--duration``): connections opened, cut by the hub,
and refused by the kernel.

Targets are loopback only: this is a test tool, not a weapon.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import signal
import sys
from dataclasses import asdict, dataclass

from mcptool.frame import Hello


@dataclass
class FloodStats:
    opened: int = 0
    cut: int = 0
    connect_errors: int = 0
    slowloris_opened: int = 0


def loopback_range(text: str) -> list[str]:
    """``127.0.0.2-17`` or ``127.0.0.7`` or a comma list of those; loopback only."""
    sources: list[str] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        start = ipaddress.IPv4Address(first)
        end = ipaddress.IPv4Address(f"{first.rsplit('.', 1)[0]}.{last}") if last else start
        for value in range(int(start), int(end) + 1):
            address = ipaddress.IPv4Address(value)
            if not address.is_loopback:
                raise ValueError(f"{address} is not a loopback address")
            sources.append(str(address))
    return sources


async def _stranger(host: str, port: int, source: str, stats: FloodStats, eager: bool) -> None:
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        except OSError:
            stats.connect_errors += 1
            await asyncio.sleep(0.01)
            continue
        stats.opened += 1
        with contextlib.suppress(OSError):
            # until the hub cuts it, or (eager) until it says anything, e.g. REJECT busy
            await (reader.read(1) if eager else reader.read())
        stats.cut += 1
        writer.close()


async def _slowloris(host: str, port: int, source: str, stats: FloodStats, pace: float) -> None:
    hello = Hello("slowloris", (1,), b"s" * 16).encode()
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        except OSError:
            stats.connect_errors += 1
            await asyncio.sleep(0.01)
            continue
        stats.slowloris_opened += 1
        with contextlib.suppress(OSError):
            for byte in hello:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(pace)
                if reader.at_eof():
                    break
            await reader.read()
        writer.close()


async def run_flood(
    host: str,
    port: int,
    sockets: int,
    sources: list[str],
    slowloris: int = 1,
    pace: float = 0.2,
    duration: float | None = None,
    eager: bool = False,
) -> FloodStats:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{host} is not a loopback address")
    stats = FloodStats()
    tasks = [
        asyncio.create_task(_stranger(host, port, sources[i % len(sources)], stats, eager))
        for i in range(sockets)
    ]
    tasks += [
        asyncio.create_task(_slowloris(host, port, sources[-1 - i % len(sources)], stats, pace))
        for i in range(slowloris)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.mcp.flood", description=__doc__)
    parser.add_argument("target", help="HOST:PORT of the hub (loopback)")
    parser.add_argument("--sockets", type=int, default=256, help="idle strangers (256)")
    parser.add_argument("--sources", default="127.0.0.2-17", help="source loopback addresses")
    parser.add_argument("--slowloris", type=int, default=1, help="byte-a-time HELLOs (1)")
    parser.add_argument("--pace", type=float, default=0.2, help="seconds between its bytes")
    parser.add_argument("--duration", type=float, help="stop after N s (default: on SIGTERM)")
    parser.add_argument(
        "--eager", action="store_true", help="reconnect on the hub's first byte, not its close"
    )
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    try:
        stats = asyncio.run(
            run_flood(
                host,
                int(port),
                args.sockets,
                loopback_range(args.sources),
                args.slowloris,
                args.pace,
                args.duration,
                args.eager,
            )
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(stats)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
