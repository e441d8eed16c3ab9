"""``mcptool simulate mcp``: an MCP peer (a hub) for tests and demos, with faults on demand."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys

import click

from mcptool.commands.options import BadValue, Float, Int, NodeId, plural, shown
from mcptool.commands.stopping import stop_event, until_stopped
from mcptool.errors import UsageError


def parse_node(text: str) -> tuple[str, bytes]:
    node, sep, secret = text.partition("=")
    if not node:
        raise UsageError(f"--node {text!r}: use ID or ID=SECRET")
    try:
        NodeId().convert(node, None, None)
    except BadValue as exc:
        raise UsageError(f"--node {shown(text)}: the id is {exc.message}") from None
    if not sep:
        secret = secrets.token_hex(16)
    if len(secret) < 16:
        raise UsageError(f"--node {text!r}: the secret must be at least 16 characters")
    return node, secret.encode()


@click.command("mcp")
@click.option("--listen", default="127.0.0.1:0", show_default=True, help="HOST:PORT (0: any port).")
@click.option("--keys", "keys_file", type=click.Path(dir_okay=False), help="Keys file (mode 600).")
@click.option(
    "--node",
    "nodes",
    multiple=True,
    metavar="ID[=SECRET]",
    help="A node it accepts; without a secret one is made up and printed. Repeatable.",
)
@click.option(
    "--heartbeat",
    default=10.0,
    show_default=True,
    type=Float(0.01, 3600),
    help="Seconds of silence before a PING.",
)
@click.option(
    "--dead-after",
    default=3,
    show_default=True,
    type=Int(1, 255),
    help="Silent heartbeat intervals before a node is declared dead.",
)
@click.option(
    "--stall-after",
    type=Float(0, 86400),
    help="Put a proxy in front that stops forwarding after N seconds: a silent, dead link.",
)
@click.option(
    "--crash-at",
    "crash_at",
    multiple=True,
    type=Int(1, 1_000_000_000),
    help="Reset every connection right after the Nth delivered frame, before its ACK.",
)
@click.option("--duration", type=Float(0, 31_536_000, min_open=True), help="Stop after N seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object a line.")
def mcp(
    listen: str,
    keys_file: str | None,
    nodes: tuple[str, ...],
    heartbeat: float,
    dead_after: int,
    stall_after: float | None,
    crash_at: tuple[int, ...],
    duration: float | None,
    as_json: bool,
) -> int:
    """Run an MCP peer that accepts links, acknowledges data and answers echo/time/status."""
    from mcptool.commands.hub import parse_listen
    from mcptool.link import load_keys
    from simulators.mcp import FaultProxy, McpPeer

    host, port = parse_listen(listen)
    keys = dict(load_keys(keys_file)) if keys_file else {}
    made_up = {}
    for spec in nodes or (() if keys else ("node-1",)):
        node, secret = parse_node(spec)
        keys[node] = secret
        if "=" not in spec:
            made_up[node] = secret.decode()

    async def run() -> None:
        stop = stop_event()
        peer = McpPeer(
            keys,
            host,
            port,
            heartbeat_interval=heartbeat,
            dead_after=dead_after,
            crash_at=crash_at,
        )
        await peer.start()
        url = peer.url
        proxy = None
        if stall_after is not None:
            proxy = FaultProxy(*peer.address)
            await proxy.start()
            url = proxy.url
            asyncio.get_running_loop().call_later(stall_after, proxy.stall)
        if as_json:
            click.echo(json.dumps({"url": url, "nodes": sorted(keys), "secrets": made_up}))
        else:
            click.echo(f"MCP peer listening on {url} (nodes: {', '.join(sorted(keys))})")
            for node, secret in made_up.items():
                click.echo(f"made-up secret of {node}: {secret}")
        sys.stdout.flush()
        click.echo("Ctrl-C to stop", err=True)
        if await until_stopped(stop, duration):
            click.echo("stopped", err=True)
        if proxy is not None:
            await proxy.stop()
        await peer.stop()
        delivered = len(peer.delivered)
        if as_json:
            click.echo(json.dumps({"delivered": delivered}))
        else:
            click.echo(f"delivered {plural(delivered, 'frame')}")

    asyncio.run(run())
    return 0
