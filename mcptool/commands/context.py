"""``mcptool context serve`` and ``mcptool ask``: the plant for LLM agents (the Model
Context Protocol; not MCP, the link's protocol). See docs/CONTEXT.md."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mcptool.commands.options import Host, Int, ModelName, Text, Url, fail
from mcptool.errors import UsageError
from mcptool.gateway.config import GatewayConfig

if TYPE_CHECKING:
    from mcptool.context.agent import Answer

TOKEN_ENV = "MCPTOOL_CONTEXT_TOKEN"
MAX_QUESTION = 4000  # characters: a question, not a document for the model's context


class Question(Text):
    """A question for the model: UTF-8, not blank, no control characters, not a novel."""

    name = "question"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = super().convert(value, param, ctx)
        if not text.strip():
            fail("an empty question: ask something about the plant", text, param, ctx)
        if any(not c.isprintable() and c not in "\n\t" for c in text):
            fail("control characters in the question: give plain text", text, param, ctx)
        if len(text) > MAX_QUESTION:
            fail(f"{len(text)} characters: ask in at most {MAX_QUESTION}", text, param, ctx)
        return text


@click.group()
def context() -> None:
    """Serve the plant to LLM agents over the Model Context Protocol."""


def _config(path: str) -> GatewayConfig:
    """The config with its paths checked, as ``gateway run`` reads it; else its problems,
    one a line, and exit 2."""
    from mcptool.commands.gateway import _load

    loaded = _load(path)
    if isinstance(loaded, int):
        sys.exit(loaded)
    return loaded


def _http(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise UsageError(f"--http {text}: give HOST:PORT, e.g. 127.0.0.1:8765")
    return host.strip("[]"), int(port)


def _token(token_file: str | None) -> str | None:
    if token_file is not None:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise UsageError(f"--token-file {token_file}: cannot read ({exc.strerror})") from None
        if not token:
            raise UsageError(f"--token-file {token_file}: the file is empty: put a token in it")
        return token
    return os.environ.get(TOKEN_ENV) or None


@context.command()
@click.option("--config", "config_path", required=True, help="The plant's TOML config.")
@click.option(
    "--http",
    "http",
    type=Text(),
    default=None,
    metavar="HOST:PORT",
    help="Streamable HTTP at http://HOST:PORT/mcp instead of stdio.",
)
@click.option(
    "--token-file", type=Text(), default=None, help=f"Bearer token for --http (or ${TOKEN_ENV})."
)
@click.option(
    "--gateway/--no-gateway",
    default=False,
    show_default=True,
    help="Run the config's gateway in this process and serve its current values.",
)
@click.option("--allow-probe", multiple=True, type=Host(), help="Another host probe may reach.")
@click.option(
    "--audit", "audit_path", type=Text(), default=None, help="Append every write attempt here."
)
def serve(
    config_path: str,
    http: str | None,
    token_file: str | None,
    gateway: bool,
    allow_probe: tuple[str, ...],
    audit_path: str | None,
) -> None:
    """Serve the plant's tools, resources and prompts (stdio unless --http)."""
    from mcptool.context import open_context, serve_http, serve_stdio
    from mcptool.context.server import check_http

    # the options first (each names itself), then the config file
    token = _token(token_file)
    address = _http(http) if http else None
    if address is not None:
        check_http(address[0], token)
    if audit_path is not None:
        try:  # opened now, so that a path that cannot take the audit lines stops the start
            Path(audit_path).open("a").close()
        except OSError as exc:
            raise UsageError(
                f"--audit {audit_path}: cannot append to it ({exc.strerror}): give a writable file"
            ) from None
    config = _config(config_path)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")

    async def run() -> None:
        audit = Path(audit_path) if audit_path else None
        async with open_context(
            config, gateway=gateway, allow_probe=allow_probe, audit_path=audit
        ) as (_tools, server):
            if address is None:
                await serve_stdio(server)
                return

            def ready(port: int) -> None:
                click.echo(f"context server on http://{address[0]}:{port}/mcp", err=True)

            await serve_http(server, address[0], address[1], token, on_ready=ready)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


ASK_ENGINES = ("ollama", "embedded", "simulator")  # the demo's --engine names
# the 0.5B model's answers, at temperature 0, can repeat a list until the context is
# full (minutes on a CPU): a round's answer is bounded (docs/CONTEXT.md)
EMBEDDED_NUM_PREDICT = 512
SIMULATED_NOTE = (
    "SIMULATED answer: the Ollama simulator chose the calls from the question's words and"
    " quotes their results; no model wrote it"
)

NO_CALLS_NOTE = "the model called no tool: nothing in this answer was read from the plant"


@click.command()
@click.argument("question", type=Question())
@click.option("--config", "config_path", required=True, help="The plant's TOML config.")
@click.option(
    "--engine",
    type=click.Choice(ASK_ENGINES),
    default="ollama",
    show_default=True,
    help="Which model answers: ollama (a real Ollama, --ollama and --model), embedded (the "
    "local-model extra's small model in this process, --model ignored; see docs/CONTEXT.md "
    "for what it manages), or simulator (the Ollama simulator in this process: "
    "deterministic tool calls, a SIMULATED answer).",
)
@click.option(
    "--ollama",
    "ollama_url",
    type=Url("http", "https", path=True),
    default=None,
    help="Ollama server (default $OLLAMA_HOST or http://127.0.0.1:11434).",
)
@click.option(
    "--model",
    type=ModelName(),
    default="llama3.2",
    show_default=True,
    help="A tool-capable Ollama model (llama3.2, qwen2.5, ...).",
)
@click.option(
    "--max-steps",
    type=Int(1, 50),
    default=6,
    show_default=True,
    help="Rounds of tool calls before giving up.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object: answer and calls.")
def ask(
    question: str,
    config_path: str,
    engine: str,
    ollama_url: str | None,
    model: str,
    max_steps: int,
    as_json: bool,
) -> int:
    """Ask a local model a question about the plant; it calls the plant's tools."""
    from mcptool.commands.demo import embedded_model, simulated_model
    from mcptool.context import open_context
    from mcptool.context.agent import OPTIONS
    from mcptool.context.agent import ask as run_ask
    from mcptool.ollama import OllamaClient

    if engine != "ollama" and ollama_url is not None:
        raise UsageError(f"--ollama names a real Ollama: leave it out with --engine {engine}")
    config = _config(config_path)

    async def run() -> Answer:
        async with contextlib.AsyncExitStack() as stack:
            url, name = ollama_url, model
            if engine == "simulator":
                url, name = await stack.enter_async_context(simulated_model())
            elif engine == "embedded":
                url, name = await stack.enter_async_context(embedded_model())
            _tools, server = await stack.enter_async_context(open_context(config))
            client = await stack.enter_async_context(OllamaClient(url))
            options = {**OPTIONS, "num_predict": EMBEDDED_NUM_PREDICT}
            return await run_ask(
                question,
                server,
                client,
                name,
                max_steps=max_steps,
                options=options if engine == "embedded" else None,
            )

    answer = asyncio.run(run())
    show_answer(answer, as_json=as_json, simulated=engine == "simulator")
    return 0 if answer.text else 1


def show_answer(answer: Answer, *, as_json: bool, simulated: bool) -> None:
    """The answer on stdout, each tool call on stderr (or all of it as one JSON object)."""
    if as_json:
        click.echo(
            json.dumps(
                {
                    "answer": answer.text,
                    "simulated": simulated,
                    "stopped": answer.stopped,
                    "steps": answer.steps,
                    "calls": [dataclasses.asdict(c) for c in answer.calls],
                },
                ensure_ascii=False,
            )
        )
        return
    for call in answer.calls:
        mark = "error" if call.error else "ok"
        args = json.dumps(call.arguments, ensure_ascii=False)
        shown = call.result if len(call.result) <= 200 else call.result[:197] + "..."
        click.echo(f"tool {call.name}({args}) {mark}: {shown}", err=True)
    if simulated:
        click.echo(SIMULATED_NOTE, err=True)
    elif answer.text and not answer.calls:  # what small models do (docs/CONTEXT.md)
        click.echo(NO_CALLS_NOTE, err=True)
    click.echo(answer.text or answer.stopped)
