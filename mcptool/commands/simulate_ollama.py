"""``mcptool simulate ollama``: a simulated Ollama API server until Ctrl-C."""

from __future__ import annotations

import asyncio
import errno
import json
from pathlib import Path

import click

from mcptool.commands.options import Float, Host, Int, ModelName
from mcptool.commands.stopping import stop_event, until_stopped
from mcptool.errors import UsageError


@click.command("ollama")
@click.option(
    "--host", default="127.0.0.1", show_default=True, type=Host(), help="Address to listen on."
)
@click.option(
    "--port",
    default=11434,
    show_default=True,
    type=Int(0, 65535),
    help="Port to listen on (Ollama's own by default). 0: any free port.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    type=ModelName(),
    help="A model to offer (repeatable). Default: llama3.2 and nomic-embed-text.",
)
@click.option(
    "--load-delay",
    default=0.0,
    show_default=True,
    type=Float(0, 3600),
    help="Seconds a cold model takes to load.",
)
@click.option(
    "--token-delay",
    default=0.02,
    show_default=True,
    type=Float(0, 60),
    help="Seconds between streamed tokens.",
)
@click.option(
    "--parallel",
    default=1,
    show_default=True,
    type=Int(1, 1024),
    help="Requests one model runs at once (OLLAMA_NUM_PARALLEL).",
)
@click.option(
    "--queue",
    default=512,
    show_default=True,
    type=Int(0, 1_000_000),
    help="Requests allowed to wait before 503 server busy (OLLAMA_MAX_QUEUE).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=Int(0, 2**63 - 1),
    help="Seed of the deterministic answers.",
)
@click.option(
    "--duration",
    type=Float(0, 31_536_000, min_open=True),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@click.option(
    "--script",
    "script_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Rules giving known answers (TOML, or JSON for *.json): see docs/SIMULATORS.md.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the address as one JSON object.")
def ollama(
    host: str,
    port: int,
    models: tuple[str, ...],
    load_delay: float,
    token_delay: float,
    parallel: int,
    queue: int,
    seed: int,
    duration: float | None,
    script_path: Path | None,
    as_json: bool,
) -> int:
    """Run a simulated Ollama server (deterministic answers, real wire format)."""
    # Imported here so `mcptool --help` stays fast.
    from simulators.ollama import OllamaSimulator, load_script

    script = load_script(script_path) if script_path is not None else None
    names = list(models) or ["llama3.2", "nomic-embed-text"]

    async def run() -> None:
        sim = OllamaSimulator(
            names,
            host=host,
            port=port,
            seed=seed,
            load_delay=load_delay,
            token_delay=token_delay,
            parallel=parallel,
            queue=queue,
            script=script,
        )
        stop = stop_event()
        try:
            await sim.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {port} on {host} is in use (a real Ollama?): "
                    "pick another with --port (0: any free port)"
                ) from None
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        try:
            if as_json:
                click.echo(json.dumps({"url": sim.url, "models": sim.models}))
            else:
                click.echo(
                    f"Ollama simulator listening on {sim.url} (models: {', '.join(sim.models)})"
                )
            click.echo(f"OLLAMA_HOST={sim.url} points clients at it; Ctrl-C to stop", err=True)
            if await until_stopped(stop, duration):
                click.echo("stopped", err=True)
        finally:
            await sim.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    return 0
