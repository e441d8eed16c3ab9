"""``mcptool hub``: accept MCP links from edge nodes and log what they deliver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from mcptool.commands.nats_options import (
    NatsUrls,
    flush_traces,
    metrics_address,
    metrics_option,
    otlp_option,
    require_fleet,
    serve_metrics,
    start_tracing,
)
from mcptool.commands.options import Float, Int, ModelName, Url, plural
from mcptool.commands.stopping import stop_event, until_stopped
from mcptool.errors import UsageError

if TYPE_CHECKING:
    from mcptool.analysis import HubAnalysis
    from mcptool.fleet import FleetIngest


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` (port 0: any free port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise UsageError(f"--listen {text!r}: use HOST:PORT, e.g. 127.0.0.1:7878")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(f"--listen {text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--listen {text!r}: port must be 0..65535")
    return host, port


def server_tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None:
        raise UsageError("--tls-key needs --tls-cert too")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--tls-cert {cert}: cannot load certificate and key: {exc}") from None
    return context


def hub_analysis(
    ollama_url: str | None,
    mqtt_url: str | None,
    model: str | None,
    analysis_config: str | None = None,
) -> HubAnalysis | None:
    """The analysis of relayed polls (and of analyze requests) that --ollama, --mqtt or
    --analysis-config ask for (None: none of them)."""
    if not (ollama_url or mqtt_url or analysis_config):
        return None
    from mcptool.edge import hub_analysis as wired
    from mcptool.edge.hub import load_analysis

    config = load_analysis(analysis_config) if analysis_config else None
    return wired(ollama_url, mqtt_url, model=model, config=config)


def bridge(ingest: FleetIngest) -> asyncio.Task[None]:
    """The hub's MQTT bridge, running until cancelled (a failure to start is logged)."""
    from mcptool.fleet.bridge import MqttBridge

    def ended(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logging.getLogger(__name__).error("the MQTT bridge stopped: %r", task.exception())

    owner = f"{socket.gethostname()} pid {os.getpid()}"
    task = asyncio.ensure_future(MqttBridge(ingest, owner).run())
    task.add_done_callback(ended)
    return task


def resumed(last_seq: dict[str, int]) -> str:
    """What a journal holds at start, for the banner: ``new`` or the nodes it resumes."""
    if not last_seq:
        return "new"
    return f"resuming {plural(len(last_seq), 'node')}"


def show(body: bytes) -> str:
    try:
        return json.dumps(body.decode("utf-8"), ensure_ascii=False)
    except UnicodeDecodeError:
        return "0x" + body.hex()


def stamp() -> str:
    return time.strftime("%H:%M:%S", time.localtime())


@click.command("hub")
@click.option(
    "--listen", default="127.0.0.1:7878", show_default=True, help="HOST:PORT to listen on."
)
@click.option(
    "--keys",
    "keys_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="Keys file: one `NODE_ID SECRET` a line, `#` comments, mode 600.",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate: serve mcps://.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert.")
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
    "--window",
    default=256,
    show_default=True,
    type=Int(1, 65535),
    help="DATA frames a node may have unacknowledged in flight.",
)
@click.option(
    "--max-connections",
    default=10_000,
    show_default=True,
    type=Int(1, 1_000_000),
    help="Connections beyond this are refused busy.",
)
@click.option(
    "--max-handshakes",
    default=256,
    show_default=True,
    type=Int(2, 1_000_000),
    help="Connections in the handshake at once, strangers and known nodes together.",
)
@click.option(
    "--reserved-handshakes",
    default=64,
    show_default=True,
    type=Int(0, 999_999),
    help="Handshake slots kept for connections whose HELLO names a known node "
    "(one each): strangers cannot take them.",
)
@click.option(
    "--max-handshakes-per-address",
    default=16,
    show_default=True,
    type=Int(1, 1_000_000),
    help="Strangers in the handshake from one address (IPv6: one /64); a newer one turns "
    "the oldest away.",
)
@click.option(
    "--hello-timeout",
    default=2.0,
    show_default=True,
    type=Float(0.01, 3600),
    help="Seconds a new connection has to send a complete HELLO.",
)
@click.option(
    "--handshake-timeout",
    default=5.0,
    show_default=True,
    type=Float(0.01, 3600),
    help="Seconds from connect to authenticated (TLS handshake included).",
)
@click.option(
    "--busy-linger",
    default=1.0,
    show_default=True,
    type=Float(0, 60),
    help="Seconds a stranger turned away for a newer one is held, unread, before its "
    "REJECT and close (bounds a flooder's reconnect rate).",
)
@click.option(
    "--refusal-log-interval",
    default=60.0,
    show_default=True,
    type=Float(1, 86_400),
    help="Refused handshakes are logged once per address, then summed up every N seconds.",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False),
    help="Append every delivered frame to this JSON Lines file and resume from it after a "
    "restart: exactly-once delivery even across a hub crash.",
)
@click.option(
    "--nats",
    "nats_urls",
    type=NatsUrls(),
    help="Store every delivered frame in this NATS JetStream cluster (nats://HOST:PORT, "
    "several comma-separated) before acknowledging it: a stateless hub, one of many "
    "(docs/FLEET.md).",
)
@click.option(
    "--window-s",
    default=10.0,
    show_default=True,
    type=Float(0.001, 86_400),
    help="With --nats: window length of the readings handed to analysis workers.",
)
@click.option(
    "--window-grace-s",
    default=30.0,
    show_default=True,
    type=Float(0, 86_400),
    help="With --nats: a device silent this long after its window's end (or its last "
    "reading's arrival, if later) has that window closed and analysed without waiting "
    "for a later reading.",
)
@click.option(
    "--mqtt-bridge/--no-mqtt-bridge",
    default=True,
    show_default=True,
    help="With --nats: move what gateways publish to NATS's MQTT listener (fleet/mqtt/...) "
    "into the fleet's stream, one hub at a time (docs/FLEET.md, two paths).",
)
@otlp_option
@metrics_option
@click.option(
    "--ollama",
    "ollama_url",
    type=Url("http", "https", path=True),
    help="Analyse the polls gateways relay with the Ollama server at URL "
    "(e.g. http://127.0.0.1:11434).",
)
@click.option(
    "--mqtt",
    "mqtt_url",
    type=Url("mqtt", "tcp"),
    help="Publish analysis records to this broker (mqtt://host:port) on "
    "mcptool/<node>/<device>/analysis.",
)
@click.option(
    "--model",
    type=ModelName(),
    help="Ollama model of the analysis (default: llama3.2, or --analysis-config's).",
)
@click.option(
    "--analysis-config",
    type=click.Path(dir_okay=False),
    help="TOML file whose [analysis] table sets the analysis: several models in "
    "[[analysis.routes]], thresholds, model options (docs/ANALYSIS.md).",
)
@click.option(
    "--analyze-timeout",
    default=60.0,
    show_default=True,
    type=Float(1, 3600),
    help="Seconds an analyze request may wait for the model's finding.",
)
@click.option("--json", "as_json", is_flag=True, help="Log one JSON object a line.")
@click.option("--quiet", is_flag=True, help="Do not log each data frame.")
@click.option("-v", "--verbose", is_flag=True,
              help="Log mcptool's own INFO lines too (a resent frame already stored, "
                   "JetStream not answering, each with its trace id under --otlp).")  # fmt: skip
@click.option("--duration", type=Float(0, 31_536_000, min_open=True), help="Stop after N seconds.")
def hub(
    listen: str,
    keys_file: str,
    tls_cert: str | None,
    tls_key: str | None,
    heartbeat: float,
    dead_after: int,
    window: int,
    max_connections: int,
    max_handshakes: int,
    reserved_handshakes: int,
    max_handshakes_per_address: int,
    hello_timeout: float,
    handshake_timeout: float,
    busy_linger: float,
    refusal_log_interval: float,
    journal: str | None,
    nats_urls: list[str] | None,
    window_s: float,
    window_grace_s: float,
    mqtt_bridge: bool,
    otlp_url: str | None,
    metrics_listen: str | None,
    ollama_url: str | None,
    mqtt_url: str | None,
    model: str | None,
    analysis_config: str | None,
    analyze_timeout: float,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    duration: float | None,
) -> int:
    """Run an MCP hub: authenticate edge nodes, acknowledge their data, answer requests.

    Requests it answers: echo (returns its data), time (hub clock), status (nodes up,
    and the analysis routes' health), analyze (a window of readings in, the model's
    finding out: docs/LINK.md). With --ollama and/or --mqtt it also analyses the polls
    gateways relay (see docs/ANALYSIS.md): findings go to MQTT on
    mcptool/<node>/<device>/analysis.
    """
    from mcptool.edge import analyze_handler
    from mcptool.link import JournalLedger, LinkServer, MemoryLedger, Router, load_keys

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if verbose:  # mcptool's own lines, not every request of the clients it uses
        logging.getLogger("mcptool").setLevel(logging.INFO)
    host, port = parse_listen(listen)
    if reserved_handshakes >= max_handshakes:
        raise UsageError(
            f"--reserved-handshakes {reserved_handshakes}: give fewer than --max-handshakes"
            f" ({max_handshakes}), or no new connection could ever start a handshake"
        )
    if nats_urls and journal:
        raise UsageError(
            "--journal and --nats: with --nats the stream is the hub's ledger; drop --journal"
        )
    address = metrics_address(metrics_listen)
    ingest = None
    if nats_urls:
        require_fleet("--nats")
        start_tracing(otlp_url, "mcptool-hub")
        from mcptool.fleet import FleetIngest

        ingest = FleetIngest(
            nats_urls, window_s=window_s, grace_s=window_grace_s, name=f"mcptool-hub {listen}"
        )
    keys = load_keys(keys_file)
    context = server_tls(tls_cert, tls_key)
    analysis = hub_analysis(ollama_url, mqtt_url, model, analysis_config)
    try:
        ledger = JournalLedger(journal) if journal else MemoryLedger()
    except OSError as exc:
        raise UsageError(f"--journal {journal}: cannot open it: {exc.strerror}") from None
    journaled = f", journal {journal}: {resumed(ledger.snapshot())}" if journal else ""
    if nats_urls:
        journaled = f", storing in NATS {','.join(nats_urls)}"
    elif metrics_listen:
        raise UsageError("--metrics: the hub's metrics are the fleet's; give --nats too")

    server: Any = None

    def log(kind: str, node: str, **fields: Any) -> None:
        if as_json:
            line = json.dumps({"time": time.time(), "event": kind, "node": node, **fields})
        else:
            details = " ".join(f"{k}={v}" for k, v in fields.items())
            line = f"{stamp()} {node} {kind} {details}".rstrip()
        click.echo(line)
        sys.stdout.flush()

    def on_data(node: str, seq: int, body: bytes) -> None:
        if isinstance(ledger, JournalLedger):
            ledger.record(node, seq, body)
        if analysis is not None:
            analysis.on_data(node, seq, body)
        if not quiet:
            if as_json:
                try:
                    content = {"data": body.decode("utf-8")}
                except UnicodeDecodeError:
                    content = {"data_hex": body.hex()}
                log("data", node, seq=seq, bytes=len(body), **content)
            else:
                log("data", node, seq=seq, bytes=len(body), data=show(body))

    def on_session(node: str, up: bool, reason: str) -> None:
        log("up" if up else "down", node, reason=reason if as_json else json.dumps(reason))

    def on_event(node: str, body: dict[str, Any]) -> None:
        if ingest is not None:
            ingest.event(node, body)
        log("event", node, body=body if as_json else json.dumps(body))

    def status() -> dict[str, Any]:
        answer: dict[str, Any] = {"nodes": sorted(server.sessions)}
        routes = getattr(analysis.pipeline.model, "status", None) if analysis else None
        if routes is not None:
            answer["routes"] = routes()  # each model's health, breaker, answers
        return answer

    async def run() -> None:
        nonlocal server
        stop = stop_event()
        server = LinkServer(
            host,
            port,
            keys,
            on_data=on_data,
            on_session=on_session,
            on_event=on_event,
            before_ack=ledger.flush if isinstance(ledger, JournalLedger) else None,
            commit=ingest.commit if ingest is not None else None,
            resume_point=ingest.resume_point if ingest is not None else None,
            handlers=Router(
                {
                    "echo": lambda data, request: data,
                    "time": lambda data, request: {"unix_ms": time.time_ns() // 1_000_000},
                    "status": lambda data, request: status(),
                    "analyze": analyze_handler(analysis, timeout_s=analyze_timeout),
                },
                timeout=analyze_timeout + 5,  # the analyze handler answers by its own deadline
            ),
            ledger=ledger,
            ssl=context,
            heartbeat_interval=heartbeat,
            dead_after=dead_after,
            window=window,
            max_connections=max_connections,
            max_handshakes=max_handshakes,
            reserved_handshakes=reserved_handshakes,
            max_handshakes_per_address=max_handshakes_per_address,
            hello_timeout=hello_timeout,
            handshake_timeout=handshake_timeout,
            busy_linger=busy_linger,
            refusal_log_interval=refusal_log_interval,
        )
        try:
            await server.start()
        except OSError as exc:
            raise UsageError(f"--listen {listen}: cannot listen there: {exc.strerror}") from None
        metrics_url = serve_metrics(ingest.metrics, address) if ingest else None
        served = f", metrics on {metrics_url}" if metrics_url else ""
        click.echo(
            f"hub listening on {server.url} ({plural(len(keys), 'node key')}{journaled}{served})"
        )
        sys.stdout.flush()
        try:
            await until_stopped(stop, duration)
        finally:
            await server.stop()

    async def run_with_analysis() -> None:
        if ingest is not None:
            try:
                await asyncio.wait_for(ingest.start(), 15)
            except Exception as exc:
                await ingest.close()
                raise UsageError(
                    f"--nats {','.join(nats_urls or [])}: cannot use JetStream there"
                    f" ({str(exc) or type(exc).__name__}): is the cluster up, with JetStream on?"
                ) from None
        bridging = bridge(ingest) if ingest is not None and mqtt_bridge else None
        try:
            async with analysis or contextlib.nullcontext():
                await run()
        finally:
            if bridging is not None:
                bridging.cancel()
                await asyncio.gather(bridging, return_exceptions=True)
            if ingest is not None:
                await ingest.close()
                ingest.metrics.close()
                flush_traces()

    try:
        asyncio.run(run_with_analysis())
    finally:
        if isinstance(ledger, JournalLedger):
            ledger.close()  # also when listening or the analysis failed to start
    return 0
