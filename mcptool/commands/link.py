"""``mcptool link``: talk to a hub as an edge node: ``ping`` it, ``send`` it data."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mcptool.commands.options import Float, Int, NodeId, Url, plural
from mcptool.errors import UsageError

# The most a DATA frame can carry at the default 16 KiB frame limit (8 bytes are its seq).
MAX_BODY = 16384 - 8


def common(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("url", type=Url("mcp", "mcps")),
        click.option(
            "--node-id",
            required=True,
            type=NodeId(),
            help="This node's id, as in the hub's keys file (1 to 64 bytes).",
        ),
        click.option(
            "--key-file",
            required=True,
            type=click.Path(dir_okay=False),
            help="File with this node's secret (just the secret, or `NODE_ID SECRET` lines).",
        ),
        click.option("--ca", type=click.Path(dir_okay=False), help="mcps://: trust this CA file."),
        click.option("--insecure", is_flag=True, help="mcps://: do not verify the certificate."),
        click.option(
            "--timeout",
            default=10.0,
            show_default=True,
            type=Float(0, 86400, min_open=True),
            help="Seconds to wait for the link (and for acknowledgements).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def client_tls(url: str, ca: str | None, insecure: bool) -> ssl.SSLContext | None:
    if not url.startswith("mcps://"):
        if ca or insecure:
            raise UsageError("--ca and --insecure are for mcps:// URLs only")
        return None
    try:
        context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    except OSError as exc:
        raise UsageError(
            f"--ca {ca}: {exc.strerror or exc}: give the PEM file of the CA that signed the hub"
        ) from None
    except ssl.SSLError as exc:
        raise UsageError(f"--ca {ca}: not a PEM certificate ({exc.reason or exc})") from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def link_opener(
    url: str,
    node_id: str,
    key_file: str,
    ca: str | None,
    insecure: bool,
    *,
    states_to_stdout: bool = False,
    **options: Any,
) -> Callable[[], Any]:
    """Check every option that can be checked without the network, then return what
    opens the link: a bad URL, key or CA file is refused before anything starts."""
    from mcptool.link import LinkClient, LinkError, load_secret, parse_url

    try:
        parse_url(url)
    except LinkError as exc:
        raise UsageError(str(exc)) from None
    context = client_tls(url, ca, insecure)
    key = load_secret(key_file, node_id)

    def on_state(event: Any) -> None:
        click.echo(f"state {event.new.value}: {event.reason}", err=not states_to_stdout)

    def open_link() -> Any:
        try:
            return LinkClient(url, node_id, key, ssl=context, on_state_change=on_state, **options)
        except ValueError as exc:
            raise UsageError(f"--node-id {node_id!r}: {exc}") from None

    return open_link


@click.group("link")
def link() -> None:
    """Act as an edge node on an MCP link (mcp:// or mcps:// URLs)."""


@link.command("ping")
@common
@click.option(
    "--count",
    default=4,
    show_default=True,
    type=Int(1, 1_000_000),
    help="PINGs to send.",
)
@click.option(
    "--interval",
    default=0.2,
    show_default=True,
    type=Float(0, 3600),
    help="Seconds between a PONG and the next PING.",
)
def ping(
    url: str,
    node_id: str,
    key_file: str,
    ca: str | None,
    insecure: bool,
    timeout: float,
    count: int,
    interval: float,
) -> int:
    """Connect, authenticate, and print round-trip times of PINGs."""

    open_link = link_opener(
        url, node_id, key_file, ca, insecure, states_to_stdout=True, reconnect=False
    )

    async def run() -> None:
        client = open_link()
        await client.start(timeout)
        session = client.session
        click.echo(
            f"session up with {client.url}: version {session.version},"
            f" heartbeat {session.heartbeat_interval:g} s x {session.dead_after},"
            f" window {session.window}"
        )
        rtts = []
        try:
            for n in range(1, count + 1):
                rtt = await client.ping(timeout)
                rtts.append(rtt * 1000)
                click.echo(f"pong {n}: {rtt * 1000:.3f} ms")
                if n < count:
                    await asyncio.sleep(interval)
        finally:
            await client.close()
        click.echo(
            f"{plural(len(rtts), 'pong')}, rtt min/avg/max = "
            f"{min(rtts):.3f}/{sum(rtts) / len(rtts):.3f}/{max(rtts):.3f} ms"
        )

    asyncio.run(run())
    return 0


def read_bodies(data: tuple[str, ...], lines: bool) -> list[bytes]:
    bodies = []
    for item in data:
        if item.startswith("@"):
            path = Path(item[1:])
            try:
                content = path.read_bytes()
            except OSError as exc:
                raise UsageError(f"--data {item}: cannot read {path}: {exc.strerror}") from None
            if lines:
                bodies.extend(line for line in content.splitlines() if line)
            else:
                bodies.extend(content[i : i + MAX_BODY] for i in range(0, len(content), MAX_BODY))
        else:
            try:
                bodies.append(item.encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise UsageError(
                    f"--data {item!r}: not UTF-8 at character {exc.start}: use @FILE for bytes"
                ) from None
    for body in bodies:
        if len(body) > MAX_BODY:
            raise UsageError(
                f"--data: a frame of {len(body)} bytes exceeds {MAX_BODY}: give a long text"
                " as @FILE, which is cut into frames"
            )
    return bodies


@link.command("send")
@common
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    help="TEXT to send, or @FILE for a file's bytes (split into 16 KiB frames). Repeatable.",
)
@click.option("--lines", is_flag=True, help="With @FILE: one frame per non-empty line.")
def send(
    url: str,
    node_id: str,
    key_file: str,
    ca: str | None,
    insecure: bool,
    timeout: float,
    data: tuple[str, ...],
    lines: bool,
) -> int:
    """Deliver data frames and wait until the hub has acknowledged every one."""
    if lines and not any(item.startswith("@") for item in data):
        raise UsageError(
            "--lines splits @FILE data into frames: give --data @FILE, or drop --lines"
        )
    bodies = read_bodies(data, lines)
    open_link = link_opener(url, node_id, key_file, ca, insecure)

    async def run() -> None:
        from mcptool.link import LinkError

        client = open_link()
        await client.start(timeout)
        started = time.perf_counter()
        try:
            futures = [await client.submit(body) for body in bodies]
            if futures:
                await asyncio.wait_for(asyncio.gather(*futures), timeout)
        except TimeoutError:
            raise LinkError(
                f"{client.pending} of {plural(len(bodies), 'frame')} not acknowledged"
                f" within {timeout:g} s"
            ) from None
        finally:
            await client.close()
        elapsed = (time.perf_counter() - started) * 1000
        size = sum(map(len, bodies))
        click.echo(
            f"delivered {plural(len(bodies), 'frame')} ({plural(size, 'byte')}),"
            f" all acknowledged, {elapsed:.1f} ms"
        )

    asyncio.run(run())
    return 0


@link.command("request")
@common
@click.option("--action", required=True, help="The REQUEST's action, e.g. echo, status, analyze.")
@click.option(
    "--data",
    "data",
    default="null",
    show_default=True,
    help="The request's data as JSON (a string needs its quotes: '\"hi\"').",
)
def request(
    url: str,
    node_id: str,
    key_file: str,
    ca: str | None,
    insecure: bool,
    timeout: float,
    action: str,
    data: str,
) -> int:
    """Send one REQUEST and print the hub's RESPONSE envelope as JSON (exit 1 unless OK)."""
    if not re.fullmatch(r"[A-Za-z0-9_.:/-]{1,64}", action):
        shown = action[:40].encode("utf-8", "backslashreplace").decode()
        raise UsageError(
            f"--action {shown!r}: a name of 1-64 letters, digits or _.:/-, e.g. --action status"
        )
    try:
        payload = json.loads(data)
        body = json.dumps(payload).encode()
    except ValueError as exc:
        shown = data[:40].encode("utf-8", "backslashreplace").decode()
        raise UsageError(f"--data {shown!r}: not JSON ({exc}); e.g. --data '{{}}'") from None
    if len(body) > 15_000:  # a REQUEST is one frame (16 KiB with its envelope)
        raise UsageError(f"--data: {len(body)} bytes of JSON; a request takes at most 15000")
    open_link = link_opener(url, node_id, key_file, ca, insecure)

    async def run() -> dict[str, Any]:
        client = open_link()
        await client.start(timeout)
        try:
            response = await client.request(action, payload, timeout=timeout)
        finally:
            await client.close()
        return dict(response.to_dict())

    envelope = asyncio.run(run())
    click.echo(json.dumps(envelope, ensure_ascii=False))
    return 0 if envelope["code"] == 200 else 1
