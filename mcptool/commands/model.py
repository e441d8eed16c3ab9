"""``mcptool model serve``: a small local model behind Ollama's API, until Ctrl-C."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import click

from mcptool.commands.options import Int, ModelName, fail
from mcptool.commands.stopping import stop_event, until_stopped
from mcptool.errors import UsageError

DEFAULT_LISTEN = "127.0.0.1:11435"


class Listen(click.ParamType):
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6); port 0 picks a free one."""

    name = "host:port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        host, sep, port = text.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            fail("not HOST:PORT: e.g. 127.0.0.1:11435 or [::1]:11435", text, param, ctx)
        if not host.isprintable() or " " in host:
            fail("not a host name or address: e.g. 127.0.0.1", text, param, ctx)
        return host, int(port)


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.group("model")
def model() -> None:
    """Run a small language model locally, behind the Ollama API."""


@model.command("serve")
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A GGUF file to serve. Default: the model of `pip install 'mcptool[local-model]'`.",
)
@click.option(
    "--name",
    type=ModelName(),
    default=None,
    help="The model name clients ask for. Default: qwen2.5-coder:0.5b for the packaged "
    "model, the file name for --model.",
)
@click.option(
    "--listen",
    type=Listen(),
    default=DEFAULT_LISTEN,
    show_default=True,
    help="Address and port. Only loopback unless you name another address.",
)
@click.option(
    "--threads",
    type=Int(1, 512),
    default=None,
    help="CPU threads for the model. Default: all cores.",
)
@click.option(
    "--ctx",
    type=Int(256, 1_048_576),
    default=4096,
    show_default=True,
    help="Context length per request, in tokens (a request's num_ctx reloads).",
)
@click.option(
    "--parallel",
    type=Int(1, 64),
    default=1,
    show_default=True,
    help="Requests generated at once (OLLAMA_NUM_PARALLEL).",
)
@click.option(
    "--queue",
    type=Int(0, 1_000_000),
    default=512,
    show_default=True,
    help="Requests allowed to wait before 503 server busy (OLLAMA_MAX_QUEUE).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the address as one JSON object.")
def serve(
    model_path: Path | None,
    name: str | None,
    listen: tuple[str, int],
    threads: int | None,
    ctx: int,
    parallel: int,
    queue: int,
    as_json: bool,
) -> int:
    """Serve a GGUF model with the Ollama API (llama.cpp in this process)."""
    # Imported here so `mcptool --help` stays fast and works without the extra.
    from mcptool.serving.gguf import read_gguf
    from mcptool.serving.llama import LlamaGenerator, import_runtime
    from mcptool.serving.ollama_api import OllamaServer
    from mcptool.serving.weights import QWEN_CODER_05B, packaged_model_path

    host, port = listen
    runtime = import_runtime()  # before joining 491 MB of model for nothing
    if model_path is None:
        path = packaged_model_path()
        name = name or QWEN_CODER_05B.name
    else:
        path = model_path
    info = read_gguf(path)
    name = name or path.stem.lower()
    generator = LlamaGenerator(
        info, threads=threads or os.cpu_count() or 1, ctx=ctx, parallel=parallel, runtime=runtime
    )

    async def run() -> None:
        server = OllamaServer(generator, name, host=host, port=port, parallel=parallel, queue=queue)
        stop = stop_event()
        try:
            await server.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {port} on {host} is in use: pick another with --listen "
                    f"{host}:PORT (port 0: any free port)"
                ) from None
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        try:
            if not loopback(host):
                click.echo(
                    f"warning: listening on {host}: any machine that reaches it can use the "
                    "model (the Ollama API has no authentication)",
                    err=True,
                )
            load_s = await server.preload(keep_alive=300.0)
            if as_json:
                click.echo(json.dumps({"url": server.url, "model": name, "load_s": load_s}))
            else:
                click.echo(f"serving {name} ({path}) on {server.url}, loaded in {load_s:.1f}s")
            click.echo(f"OLLAMA_HOST={server.url} points clients at it; Ctrl-C to stop", err=True)
            if await until_stopped(stop):
                click.echo("stopped", err=True)
        finally:
            await server.stop()
            await generator.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    return 0
