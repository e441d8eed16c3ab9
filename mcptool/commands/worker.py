"""``mcptool worker``: analyse closed windows from a NATS JetStream work queue."""

from __future__ import annotations

import asyncio
import logging
import sys

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
from mcptool.commands.options import Float, Int, ModelName, Url
from mcptool.commands.stopping import stop_event, until_stopped
from mcptool.errors import UsageError


@click.command("worker")
@click.option(
    "--nats",
    "nats_urls",
    required=True,
    type=NatsUrls(),
    help="The NATS JetStream cluster (nats://HOST:PORT, several comma-separated).",
)
@click.option(
    "--ollama",
    "ollama_url",
    required=True,
    type=Url("http", "https", path=True),
    help="The Ollama server that explains each window (e.g. http://127.0.0.1:11434).",
)
@click.option(
    "--model", default="llama3.2", show_default=True, type=ModelName(), help="Ollama model."
)
@click.option(
    "--max-in-flight",
    default=1,
    show_default=True,
    type=Int(1, 1024),
    help="Windows this worker analyses at once (model calls in flight).",
)
@click.option(
    "--ack-wait",
    default=30.0,
    show_default=True,
    type=Float(1, 86_400),
    help="Seconds before the window of a worker that stopped answering goes to another "
    "(set when the work queue is first created).",
)
@otlp_option
@metrics_option
@click.option("--duration", type=Float(0, 31_536_000, min_open=True), help="Stop after N seconds.")
@click.option("-v", "--verbose", is_flag=True, help="Log each window's record as it is published.")
def worker(
    nats_urls: list[str],
    ollama_url: str,
    model: str,
    max_in_flight: int,
    ack_wait: float,
    otlp_url: str | None,
    metrics_listen: str | None,
    duration: float | None,
    verbose: bool,
) -> int:
    """Take closed windows from the fleet's work queue, analyse each with the model, and
    publish one finding per window (docs/FLEET.md). Start more workers to go faster."""
    require_fleet("--nats")
    address = metrics_address(metrics_listen)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if verbose:  # mcptool's own lines, not every HTTP request of the model's client
        logging.getLogger("mcptool").setLevel(logging.INFO)
    start_tracing(otlp_url, "mcptool-worker")  # after the logging: its lines name traces
    from mcptool.fleet import FleetWorker, StreamSettings

    fleet_worker = FleetWorker(
        nats_urls,
        ollama_url,
        model=model,
        max_in_flight=max_in_flight,
        settings=StreamSettings(ack_wait_s=ack_wait),
    )

    async def run() -> None:
        stop = stop_event()
        try:
            await asyncio.wait_for(fleet_worker.start(), 15)
        except Exception as exc:
            await fleet_worker.close()
            raise UsageError(
                f"--nats {','.join(nats_urls)}: cannot use JetStream there"
                f" ({str(exc) or type(exc).__name__}): is the cluster up, with JetStream on?"
            ) from None
        metrics_url = serve_metrics(fleet_worker.metrics, address)
        click.echo(
            f"worker taking windows from NATS {','.join(nats_urls)}, model {model} at"
            f" {ollama_url}, {max_in_flight} at a time"
            + (f", metrics on {metrics_url}" if metrics_url else "")
        )
        sys.stdout.flush()
        loop = asyncio.ensure_future(fleet_worker.run(stop))
        try:
            await until_stopped(stop, duration)
        finally:
            stop.set()
            await loop
            await fleet_worker.close()
            fleet_worker.metrics.close()
            flush_traces()
            click.echo(
                f"worker stopped: {fleet_worker.analysed} windows analysed,"
                f" {fleet_worker.duplicates} already had a finding,"
                f" {fleet_worker.retried} retried"
            )

    asyncio.run(run())
    return 0
