"""``mcptool ollama``: check a local Ollama, list its models, generate and chat."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mcptool.commands.options import Float, ModelName, Text, Url, plural
from mcptool.errors import UsageError
from mcptool.numbers import NumberError, Range

if TYPE_CHECKING:
    from mcptool.ollama import Chunk, OllamaClient, Result

T = TypeVar("T")
DEFAULT_MODEL = "llama3.2"

url_option = click.option(
    "--url",
    envvar="OLLAMA_HOST",
    default="http://127.0.0.1:11434",
    type=Url("http", "https", path=True, bare_host=True),
    show_default=True,
    help="Ollama's address (or set OLLAMA_HOST).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, not text.")


@click.group("ollama")
def ollama() -> None:
    """Talk to a local Ollama: health, models, generate, chat."""


def _run(url: str, work: Callable[[OllamaClient], Awaitable[T]], **client_options: Any) -> T:
    from mcptool.ollama import OllamaClient, RetryPolicy

    async def main() -> T:
        options: dict[str, Any] = {"retry": RetryPolicy(attempts=2, base=0.2, cap=1.0)}
        options.update(client_options)
        async with OllamaClient(url, **options) as client:
            return await work(client)

    return asyncio.run(main())


@ollama.command()
@url_option
@json_option
def health(url: str, as_json: bool) -> int:
    """Is Ollama running? Its version, pulled and loaded models."""

    async def check(client: OllamaClient) -> dict[str, Any]:
        version = await client.version()
        pulled = await client.list_models()
        loaded = await client.running_models()
        return {
            "url": client.url,
            "running": True,
            "version": version,
            "models": [m.name for m in pulled],
            "loaded": [m.name for m in loaded],
        }

    report = _run(url, check)
    if as_json:
        click.echo(json.dumps(report))
    else:
        loaded = ", ".join(report["loaded"]) or "none"
        click.echo(
            f"Ollama {report['version']} is running at {report['url']}: "
            f"{plural(len(report['models']), 'model')} pulled, loaded: {loaded}"
        )
    return 0


@ollama.command()
@url_option
@json_option
@click.option("--running", is_flag=True, help="Only models loaded in memory now (/api/ps).")
def models(url: str, as_json: bool, running: bool) -> int:
    """List pulled models (or, with --running, loaded ones)."""
    from mcptool.ollama import can_pull

    async def fetch(client: OllamaClient) -> tuple[list[Any], dict[str, str], str]:
        loaded = await client.running_models()
        expiry = {m.name: m.expires_at for m in loaded}  # only /api/ps knows it
        if running:
            return loaded, expiry, client.server
        return await client.list_models(), expiry, client.server

    listed, loaded, server = _run(url, fetch)
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps([asdict(m) | {"loaded": m.name in loaded} for m in listed]))
        return 0
    if not listed:
        if running:
            hint = "none loaded"
        elif can_pull(server):
            hint = "none pulled: run `ollama pull llama3.2`"
        else:  # mcptool's own servers serve what they were started with
            hint = "none served: start `mcptool model serve` or `mcptool simulate ollama` with one"
        click.echo(f"no models ({hint})")
        return 0
    width = max(len(m.name) for m in listed)
    # with --running every row is loaded: the column is when it unloads (Ollama's UNTIL)
    last = "UNTIL" if running else "LOADED"
    click.echo(f"{'NAME':<{width}}  {'SIZE':>8}  {'PARAMS':>7}  {'QUANT':<8}  {last}")
    for m in listed:
        if running:
            until = m.expires_at or "kept loaded"
        else:
            expires = loaded.get(m.name)
            until = "" if expires is None else f"until {expires}" if expires else "yes"
        click.echo(
            f"{m.name:<{width}}  {_size(m.size):>8}  {m.parameter_size:>7}  "
            f"{m.quantization_level:<8}  {until}"
        )
    return 0


def _generation_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed(
        [
            url_option,
            click.option(
                "--model",
                "-m",
                default=DEFAULT_MODEL,
                show_default=True,
                type=ModelName(),
                envvar="MCPTOOL_OLLAMA_MODEL",
                help="Model name.",
            ),
            click.option(
                "--format",
                "format_",
                metavar="SCHEMA_FILE|json",
                help="Structured output: a JSON-schema file, or `json`. The answer is "
                "validated (one repair retry) and printed as JSON.",
            ),
            click.option("--system", type=Text(), help="System prompt."),
            click.option(
                "--option",
                "-o",
                "options",
                multiple=True,
                metavar="KEY=VALUE",
                help="Model option, e.g. -o temperature=0 -o num_ctx=8192 (repeatable).",
            ),
            click.option(
                "--keep-alive",
                type=Text(),
                help="How long the model stays loaded, e.g. 10m; 0 unloads it after the answer.",
            ),
            click.option(
                "--timeout",
                type=Float(0, 86400, min_open=True),
                default=900.0,
                show_default=True,
                help="Total deadline, seconds.",
            ),
            click.option(
                "--load-timeout",
                type=Float(0, 86400, min_open=True),
                default=300.0,
                show_default=True,
                help="Deadline for the first token (covers a cold model load).",
            ),
            click.option("--stats", is_flag=True, help="Print the call's figures to stderr."),
            json_option,
            click.argument("prompt", type=Text()),
        ]
    ):
        f = decorator(f)
    return f


@ollama.command()
@_generation_options
def generate(**kwargs: Any) -> int:
    """Generate a completion for PROMPT (`-` reads it from stdin), streamed as it comes."""
    return _generation("generate", **kwargs)


@ollama.command()
@_generation_options
def chat(**kwargs: Any) -> int:
    """Ask PROMPT as one chat turn (`-` reads it from stdin), streamed as it comes."""
    return _generation("chat", **kwargs)


def _generation(
    kind: str,
    *,
    url: str,
    model: str,
    format_: str | None,
    system: str | None,
    options: tuple[str, ...],
    keep_alive: str | None,
    timeout: float,
    load_timeout: float,
    stats: bool,
    as_json: bool,
    prompt: str,
) -> int:
    from mcptool.ollama import Timeouts

    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise UsageError("PROMPT is empty: give the text to send, or `-` to read stdin")
    schema = _load_format(format_)
    model_options = _parse_options(options)
    keep = _keep_alive(keep_alive)
    streaming = not (as_json or schema)
    wrote = False

    def show(chunk: Chunk) -> None:
        nonlocal wrote
        if chunk.text:
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
            wrote = True

    async def work(client: OllamaClient) -> Result:
        on_chunk = show if streaming else None
        if kind == "generate":
            return await client.generate(
                model,
                prompt,
                system=system,
                format=schema,
                options=model_options,
                keep_alive=keep,
                on_chunk=on_chunk,
            )
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        return await client.chat(
            model,
            messages,
            format=schema,
            options=model_options,
            keep_alive=keep,
            on_chunk=on_chunk,
        )

    try:
        result = _run(url, work, timeouts=Timeouts(load=load_timeout, total=timeout))
    finally:
        if wrote:
            sys.stdout.write("\n")
            sys.stdout.flush()
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    elif schema:
        click.echo(json.dumps(result.data, indent=2, ensure_ascii=False))
    if stats:
        m = result.metrics
        click.echo(
            f"load {m.load_s:.2f}s, prompt {m.prompt_eval_count} tokens in {m.prompt_eval_s:.2f}s, "
            f"{m.eval_count} tokens in {m.eval_s:.2f}s ({m.tokens_per_s:.1f} tokens/s), "
            f"queue {m.queue_wait_s:.2f}s, total {m.wall_s:.2f}s, attempts {m.attempts}",
            err=True,
        )
    return 0


# Go's time.ParseDuration, which Ollama applies to a keep_alive string: 10m, 1h30m, 500ms
_DURATION = re.compile(r"-?(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")


def _keep_alive(text: str | None) -> float | str | None:
    """Seconds as a number, or a duration string Ollama parses; else one line."""
    if text is None:
        return None
    try:
        return Range(-1, 31_536_000).parse(text)  # -1: keep it loaded until told otherwise
    except NumberError as exc:
        if _DURATION.fullmatch(text.strip()):
            return text.strip()
        raise UsageError(
            f"--keep-alive {text}: {exc}, or a duration such as 10m or 1h30m"
        ) from None


def _load_format(value: str | None) -> Any:
    if value is None or value == "":
        return None
    if value == "json":
        return "json"
    path = Path(value)
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"--format {value}: no such file (give a JSON-schema file or `json`)"
        ) from None
    except OSError as exc:
        raise UsageError(f"--format {value}: cannot read it: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--format {value}: not JSON ({exc.msg} at line {exc.lineno})") from None
    import jsonschema

    if not isinstance(schema, dict):
        raise UsageError(f"--format {value}: a JSON schema must be an object")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise UsageError(f"--format {value}: not a valid JSON schema: {exc.message}") from None
    return schema


# Ollama's model options (its api/types.go Options and Runner) and their types; Ollama
# ignores a misspelt one with a log line on the server, so it is refused here instead.
_INT_OPTIONS = {
    "num_ctx": Range(1, 2**31 - 1, integer=True),
    "num_batch": Range(1, 2**31 - 1, integer=True),
    "num_gpu": Range(-1, 2**31 - 1, integer=True),
    "main_gpu": Range(0, 2**31 - 1, integer=True),
    "num_thread": Range(0, 2**31 - 1, integer=True),
    "num_keep": Range(-1, 2**31 - 1, integer=True),
    "num_predict": Range(-2, 2**31 - 1, integer=True),
    "seed": Range(-(2**63), 2**63 - 1, integer=True),
    "top_k": Range(0, 2**31 - 1, integer=True),
    "repeat_last_n": Range(-1, 2**31 - 1, integer=True),
    "mirostat": Range(0, 2, integer=True),
}
_FLOAT_OPTIONS = {
    "temperature": Range(0, 100),
    "top_p": Range(0, 1),
    "min_p": Range(0, 1),
    "typical_p": Range(0, 1),
    "tfs_z": Range(0, 100),
    "repeat_penalty": Range(0, 100),
    "presence_penalty": Range(-100, 100),
    "frequency_penalty": Range(-100, 100),
    "mirostat_tau": Range(0, 100),
    "mirostat_eta": Range(0, 100),
}
_BOOL_OPTIONS = {"numa", "low_vram", "use_mmap", "use_mlock", "vocab_only", "penalize_newline"}
_STOP = "stop"


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--option {pair}: expected KEY=VALUE, e.g. temperature=0")
        parsed[key] = _option_value(key, raw, pair)
    return parsed


def _option_value(key: str, raw: str, pair: str) -> Any:
    """``raw`` as the type Ollama expects for ``key``, else one line naming both."""
    where = f"--option {pair}"
    if key in _INT_OPTIONS or key in _FLOAT_OPTIONS:
        number_range = _INT_OPTIONS.get(key) or _FLOAT_OPTIONS[key]
        try:
            value = number_range.parse(raw)
        except NumberError as exc:
            raise UsageError(f"{where}: {key} is {exc}") from None
        return int(value) if number_range.integer else float(value)
    if key in _BOOL_OPTIONS:
        if raw.strip().lower() not in ("true", "false"):
            raise UsageError(f"{where}: {key} is true or false")
        return raw.strip().lower() == "true"
    if key == _STOP:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return [raw]  # one stop sequence, written plainly
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise UsageError(f"{where}: stop is a string or a JSON list of strings, e.g. '[\"\\n\"]'")
    known = sorted([*_INT_OPTIONS, *_FLOAT_OPTIONS, *_BOOL_OPTIONS, _STOP])
    import difflib

    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
    raise UsageError(f"{where}: unknown model option {key!r} ({hint})")


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
