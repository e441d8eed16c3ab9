"""``mcptool demo``: the main job with no set-up.

Starts three simulated Modbus devices (a boiler that runs hot after a few seconds, a
power meter, an I/O block), a model (in this order: a real Ollama when it answers on
localhost:11434 with the model pulled; else the embedded model when the ``local-model``
extra is installed, ``mcptool model serve`` in this process; else the Ollama simulator,
whose answers are scripted and say so), and the gateway with analysis; then shows
devices, trigger events and findings as they arrive. Before it stops, it asks the plant
one question the way ``mcptool ask`` does (the context server's tools on the running
gateway, docs/CONTEXT.md) and prints the ``mcptool ask`` command that asks it again
after the demo has gone. Everything listens on loopback, on ephemeral ports; the plant's
config, the spool (an hour of history and findings) and the JSON Lines file stay in the
demo's directory (``--dir``, by default ``$XDG_STATE_HOME/mcptool/demo``), which the
next demo clears.

The view reads what the gateway forwards: it is one more destination of the spool, so
what it shows (telemetry, then trigger and finding records) is exactly what MQTT, the
JSON Lines file and the MCP uplink receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shlex
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from mcptool.commands.options import Float, ModelName, Text, Url
from mcptool.commands.stopping import stop_event
from mcptool.errors import UsageError

if TYPE_CHECKING:
    from mcptool.context.agent import Answer
    from mcptool.gateway import Gateway
    from mcptool.gateway.config import GatewayConfig
    from mcptool.gateway.spool import Record

OLLAMA_URL = "http://127.0.0.1:11434"
ENGINES = ("auto", "ollama", "embedded", "simulator")
SIMULATED_MODEL = "ollama-simulator"  # the name every simulated finding carries
QUESTION = "why is the boiler running hot?"  # the demo's question to `mcptool ask`
EMBEDDED_ASK_WHY = (
    "the packaged 0.5B model calls no tool for this question and answers from nothing "
    "(docs/CONTEXT.md); `mcptool ask --engine embedded` asks it anyway"
)
ASK_CTX = 8192  # tokens of context for `mcptool ask --engine embedded` (~100 MB more)
ASK_TIMEOUT_S = 300.0  # a real model on a CPU may take minutes for a few tool rounds
# what a demo leaves in its directory, and the next one clears (nothing else in it)
LEFT = ("plant.toml", "demo.jsonl", "spool.db*", "analysis.db*")

# The register maps the gateway polls: names and units the prompts and the view use.
DEVICES: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "boiler": (
        "boiler_drift",
        [
            {
                "name": "supply_temperature",
                "address": 0,
                "type": "float32",
                "unit": "°C",
                "description": "water leaving the boiler; normal 65-80 °C, alarm above 85 °C",
            },
            {
                "name": "return_temperature",
                "address": 2,
                "type": "float32",
                "unit": "°C",
                "description": "water back from the heating circuit; normal 50-60 °C",
            },
            {
                "name": "water_pressure",
                "address": 4,
                "type": "float32",
                "unit": "bar",
                "description": "heating circuit pressure; normal 1.5-2.0 bar, alarm below 1.0 bar",
            },
            {
                "name": "flue_gas_temperature",
                "address": 6,
                "type": "float32",
                "unit": "°C",
                "description": "exhaust gas; normal 130-160 °C, alarm above 180 °C",
            },
            {
                "name": "setpoint",
                "address": 8,
                "type": "float32",
                "unit": "°C",
                "description": "supply temperature setpoint",
                # the one point an agent may write (docs/CONTEXT.md), within these bounds
                "writable": True,
                "min": 40.0,
                "max": 80.0,
            },
            {
                "name": "burner_modulation",
                "address": 10,
                "type": "int16",
                "scale": 0.1,
                "unit": "%",
                "description": "burner firing rate, 0-100 %",
            },
            {
                "name": "burner_on",
                "table": "discrete",
                "address": 0,
                "description": "the burner is firing",
            },
            {
                "name": "lockout",
                "table": "discrete",
                "address": 2,
                "description": "safety lockout: the burner stopped on a fault and needs a reset",
            },
        ],
    ),
    "power_meter": (
        "power_meter",
        [
            {
                "name": "active_power",
                "address": 6,
                "type": "int32",
                "order": "CDAB",
                "unit": "W",
                "description": "total active power; rated 20 kW",
            },
            {
                "name": "voltage_l1",
                "address": 8,
                "type": "float32",
                "order": "CDAB",
                "unit": "V",
                "description": "phase L1 to neutral; nominal 230 V, allowed 207-253 V",
            },
            {
                "name": "frequency",
                "address": 10,
                "type": "float32",
                "order": "CDAB",
                "unit": "Hz",
                "description": "grid frequency; nominal 50 Hz",
            },
            {
                "name": "energy_import",
                "address": 0,
                "type": "uint32",
                "order": "CDAB",
                "unit": "Wh",
                "description": "imported energy counter (wraps at 2^32)",
            },
        ],
    ),
    "io_block": (
        "digital_io",
        [
            {
                "name": "door_contact",
                "table": "discrete",
                "address": 0,
                "description": "boiler room door contact",
            },
            {
                "name": "pump_running",
                "table": "discrete",
                "address": 4,
                "description": "circulation pump running (its feedback contact)",
            },
            {"name": "alarm_horn", "table": "coil", "address": 0, "description": "alarm horn"},
            {
                "name": "input_word",
                "table": "input",
                "address": 0,
                "type": "uint16",
                "description": "16 digital inputs as one word",
            },
        ],
    ),
}
DESCRIPTIONS = {
    "boiler": "gas boiler BX-200, 200 kW, boiler room 1",
    "power_meter": "PM-3000 energy meter on the boiler room's supply, 400/230 V",
    "io_block": "digital I/O block in boiler room 1",
}

THRESHOLDS = [
    {"point": "supply_temperature", "above": 85.0, "severity": "critical"},
    {"point": "flue_gas_temperature", "above": 180.0},
    {"point": "water_pressure", "below": 1.0, "severity": "critical"},
    {"point": "voltage_l1", "above": 253.0},
    {"point": "voltage_l1", "below": 207.0},
]


@click.command()
@click.option(
    "--duration",
    type=Float(1.0, 31_536_000),
    default=None,
    metavar="S",
    help="Stop after S seconds (default: run until Ctrl-C).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines instead of the live view.")
@click.option(
    "--mqtt",
    "mqtt_url",
    default=None,
    type=Url("mqtt", "mqtts", "tcp"),
    help="Also publish to this broker, e.g. mqtt://127.0.0.1:1883 (telemetry on "
    "mcptool/demo/<device>/telemetry, analysis on mcptool/demo/<device>/analysis).",
)
@click.option(
    "--model",
    default="llama3.2",
    show_default=True,
    type=ModelName(),
    help="The Ollama model to use.",
)
@click.option(
    "--ollama",
    "ollama_url",
    default=OLLAMA_URL,
    type=Url("http", "https", path=True),
    show_default=True,
    help="Where to look for a real Ollama; if none answers there, the embedded model "
    "(the local-model extra), else the simulator.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="auto",
    show_default=True,
    help="Which model answers: auto (Ollama, else embedded, else simulator), or only one "
    "of them (ollama and embedded fail with the fix when they cannot run).",
)
@click.option(
    "--dir",
    "directory",
    type=Text(),
    default=None,
    metavar="DIR",
    help="Where the plant's config, spool and JSON Lines stay for `mcptool ask` "
    "(default $XDG_STATE_HOME/mcptool/demo; each demo clears it).",
)
def demo(
    duration: float | None,
    as_json: bool,
    mqtt_url: str | None,
    model: str,
    ollama_url: str,
    engine: str,
    directory: str | None,
) -> int:
    """Simulated devices, a model and the gateway with analysis, in one command."""
    mqtt = _mqtt(mqtt_url) if mqtt_url else None
    out = _JsonOutput() if as_json else _LiveOutput() if sys.stdout.isatty() else _TextOutput()
    folder = Path(directory) if directory else _state_dir()
    return asyncio.run(_demo(duration, out, mqtt, model, ollama_url, engine, folder))


def _state_dir() -> Path:
    """The demo's directory when --dir is not given (XDG's place for state that lasts)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mcptool" / "demo"


@contextlib.contextmanager
def _claimed(folder: Path) -> Iterator[Path]:
    """``folder``, created, locked against a second demo, and cleared of the last one's
    files; the files stay when the demo ends."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = (folder / "demo.lock").open("a")
    except OSError as exc:
        raise UsageError(
            f"--dir {folder}: cannot use it ({exc.strerror}): give a writable directory"
        ) from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(
                f"another mcptool demo uses {folder}: stop it, or give this one --dir"
            ) from None
        for pattern in LEFT:
            for old in folder.glob(pattern):
                old.unlink(missing_ok=True)
        yield folder


def _write_config(path: Path, table: Mapping[str, Any]) -> None:
    """The plant's config as TOML, readable only by its owner (it may hold a broker's
    password)."""
    import tomli_w

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# written by `mcptool demo`: the simulated plant, for `mcptool ask`\n")
        out.write(tomli_w.dumps(table))


def _mqtt(url: str) -> dict[str, Any]:
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts", "tcp"):
        raise UsageError(f"--mqtt {url}: use mqtt://host:port")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise UsageError(f"--mqtt {url}: the port is not a number from 0 to 65535") from None
    config: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": port,
        "tls": parts.scheme == "mqtts",
    }
    if parts.username:
        config["username"] = parts.username
        config["password"] = parts.password or ""
    return config


async def _find_ollama(url: str, model: str) -> str | None:
    """``url`` if a real Ollama answers there and has ``model`` pulled, else None."""
    from mcptool.ollama import OllamaClient, OllamaError, RetryPolicy, Timeouts

    client = OllamaClient(
        url, timeouts=Timeouts(connect=0.5, load=2.0, total=2.0), retry=RetryPolicy(attempts=1)
    )
    try:
        names = {m.name for m in await client.list_models()}
    except (OllamaError, OSError):
        return None
    finally:
        await client.aclose()
    wanted = model if ":" in model else f"{model}:latest"
    return client.url if wanted in names or model in names else None


async def _choose(engine: str, url: str, model: str) -> tuple[str, str | None, str]:
    """(engine, the real Ollama's URL or None, why), in the order Ollama, embedded,
    simulator; an engine asked for by name that cannot run is a UsageError with the fix."""
    real = None if engine in ("embedded", "simulator") else await _find_ollama(url, model)
    if real is not None:
        return "real", real, f"found {model} at {real}"
    if engine == "ollama":
        raise UsageError(f"--engine ollama: no Ollama with {model} pulled at {url}")
    no_ollama = f"no Ollama with {model} pulled at {url}"
    if engine in ("auto", "embedded"):
        from mcptool.analysis.embedded import embedded_available

        missing = embedded_available()
        if missing is None:
            return "embedded", None, no_ollama if engine == "auto" else "--engine embedded"
        if engine == "embedded":
            raise UsageError(f"--engine embedded: {missing}")
        return "simulator", None, f"{no_ollama}; no embedded model ({missing})"
    return "simulator", None, "--engine simulator"


async def _demo(
    duration: float | None,
    out: _Output,
    mqtt: dict[str, Any] | None,
    model: str,
    url: str,
    engine: str = "auto",
    folder: Path | None = None,
) -> int:
    from mcptool.edge import edge_gateway, load_config
    from simulators.modbus import ModbusSimulator, load_profile
    from simulators.ollama import OllamaSimulator

    stop = stop_event()
    async with contextlib.AsyncExitStack() as stack:
        kind, real, why = await _choose(engine, url, model)
        if kind == "real":
            ollama = {"ollama": "real", "url": real, "model": model}
        elif kind == "embedded":
            from mcptool.analysis.embedded import EMBEDDED
            from mcptool.serving.weights import QWEN_CODER_05B

            model = QWEN_CODER_05B.name
            ollama = {"ollama": "embedded", "url": EMBEDDED, "model": model}
        else:
            model = SIMULATED_MODEL
            sim = OllamaSimulator(models=[model], answer=_demo_answer, host="127.0.0.1", port=0)
            await stack.enter_async_context(sim)
            ollama = {"ollama": "simulator", "url": sim.url, "model": model}
        profiles = [load_profile(profile) for profile, _ in DEVICES.values()]
        devices = await stack.enter_async_context(ModbusSimulator(profiles))
        tmp = stack.enter_context(_claimed(folder or _state_dir()))
        table = _gateway_config(devices.addresses, tmp, mqtt)
        table["analysis"] = {
            "ollama": ollama["url"],
            "model": model,
            "window_s": 4.0,
            "min_baseline_windows": 3,
            "zscore": 4.0,
            "offline_after_s": 10.0,
            "cooldown_s": 60.0,
            "min_call_interval_s": 1.0,
            "request_timeout_s": 120.0,
            # a bounded finding takes 100-300 tokens; the 0.5B model makes ~10-30 a second
            "num_predict": 384,
            "thresholds": THRESHOLDS,
            "queue_path": str(tmp / "analysis.db"),
        }
        config_path = tmp / "plant.toml"
        _write_config(config_path, table)
        config = load_config(config_path)  # the file `mcptool ask` reads after the demo
        gateway = edge_gateway(config, transports=[_ViewTransport(out)], drain_timeout=1.0)
        pipeline = gateway.sink("analysis").pipeline  # type: ignore[attr-defined]
        out.started(
            {
                "type": "demo",
                **ollama,
                "why": why,
                "devices": {
                    name: f"{h}:{p}"
                    for name, (h, p) in zip(DEVICES, devices.addresses, strict=True)
                },
                "mqtt": f"{mqtt['host']}:{mqtt['port']}" if mqtt else None,
                "window_s": table["analysis"]["window_s"],
            }
        )
        started = time.monotonic()
        async with gateway:
            out.gateway = gateway
            while not stop.is_set():
                left = None if duration is None else duration - (time.monotonic() - started)
                if left is not None and left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(0.5, left or 0.5))
                out.tick(time.monotonic() - started, duration)
            stop.clear()  # a Ctrl-C from now on skips the question
            asked = await _ask(config, gateway, ollama, stop, stack)
            asked["command"] = _ask_command(config_path, ollama)
            out.asked(asked)
            out.gateway = None
        out.finished(pipeline.stats())
    return 0


@contextlib.asynccontextmanager
async def simulated_model() -> AsyncIterator[tuple[str, str]]:
    """The Ollama simulator on a free loopback port, for ``mcptool ask --engine
    simulator`` and the demo's question: (its URL, the model name)."""
    from simulators.ollama import OllamaSimulator

    async with OllamaSimulator(models=[SIMULATED_MODEL], host="127.0.0.1", port=0) as sim:
        yield sim.url, SIMULATED_MODEL


@contextlib.asynccontextmanager
async def embedded_model() -> AsyncIterator[tuple[str, str]]:
    """The packaged model behind ``mcptool model serve``'s API on a free loopback port,
    for ``mcptool ask --engine embedded``: (its URL, the model name). Not installed: a
    UsageError with the install hint."""
    from mcptool.analysis.config import AnalysisConfig
    from mcptool.analysis.embedded import EMBEDDED, EmbeddedModel, embedded_available

    if (missing := embedded_available()) is not None:
        raise UsageError(f"--engine embedded: {missing}")
    # the tools' schemas alone are ~1,200 tokens, and each round adds calls and results:
    # 4,096 (the analysis' context) overflows within a few rounds
    model = EmbeddedModel(AnalysisConfig(ollama=EMBEDDED, num_ctx=ASK_CTX))
    try:
        yield await model.start(), model.name
    finally:
        await model.aclose()


async def _ask(
    config: GatewayConfig,
    gateway: Gateway,
    ollama: Mapping[str, str],
    stop: asyncio.Event,
    stack: contextlib.AsyncExitStack,
) -> dict[str, Any]:
    """The demo's question through ``mcptool ask``'s agent loop, on the running gateway's
    current values, with the demo's model. The embedded model is not asked: its server
    takes tools, but the packaged 0.5B model calls none for this question and answers
    from nothing (measured in docs/CONTEXT.md), so the simulator answers, and says so."""
    from mcptool.context import open_context
    from mcptool.context.agent import ask
    from mcptool.ollama import OllamaClient, OllamaError

    record: dict[str, Any] = {"type": "ask", "question": QUESTION}
    url, model = ollama["url"], ollama["model"]
    if ollama["ollama"] == "embedded":
        url, model = await stack.enter_async_context(simulated_model())
        record["why"] = EMBEDDED_ASK_WHY
    record.update(simulated=ollama["ollama"] != "real", model=model)
    async with (
        open_context(config, gateway=gateway) as (_tools, server),
        OllamaClient(url) as client,
    ):
        asking = asyncio.create_task(ask(QUESTION, server, client, model))
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({asking, stopping}, timeout=ASK_TIMEOUT_S,
                                     return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        stopping.cancel()
        if asking not in done:
            asking.cancel()
            await asyncio.gather(asking, return_exceptions=True)
            why = "stopped (Ctrl-C)" if stop.is_set() else f"no answer in {ASK_TIMEOUT_S:g} s"
            return {**record, "answer": "", "calls": [], "stopped": why}
        try:
            answer: Answer = asking.result()
        except OllamaError as exc:  # a real model that cannot take tools, say
            return {**record, "answer": "", "calls": [], "stopped": str(exc)}
    return {
        **record,
        "answer": answer.text,
        "stopped": answer.stopped,
        "calls": [dataclasses.asdict(c) for c in answer.calls],
    }


def _ask_command(config_path: Path, ollama: Mapping[str, str]) -> str:
    """The ``mcptool ask`` command line that works after the demo has gone: the same
    config, and a model that is still there (a real Ollama, else the simulator)."""
    engine = (
        ["--ollama", ollama["url"], "--model", ollama["model"]]
        if ollama["ollama"] == "real"
        else ["--engine", "simulator"]
    )
    return shlex.join(["mcptool", "ask", QUESTION, "--config", str(config_path), *engine])


def _gateway_config(
    addresses: list[tuple[str, int]], tmp: Path, mqtt: dict[str, Any] | None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "node": "demo",
        # an hour of delivered records stays as history for `mcptool ask` (CONTEXT.md)
        "spool": {"path": str(tmp / "spool.db"), "commit_interval": 0.05, "keep": 3600},
        "jsonl": {"path": str(tmp / "demo.jsonl")},
        "defaults": {"interval": 0.5, "timeout": 1.0, "backoff_initial": 0.5, "backoff_max": 2.0},
        "devices": [
            {
                "name": name,
                "description": DESCRIPTIONS[name],
                "host": host,
                "port": port,
                "unit": 1,
                "points": points,
            }
            for (name, (_, points)), (host, port) in zip(DEVICES.items(), addresses, strict=True)
        ],
    }
    if mqtt is not None:
        config["mqtt"] = {**mqtt, "keepalive": 10, "publish_timeout": 5}
    return config


class _ViewTransport:
    """A gateway destination that shows what the gateway forwards."""

    name = "view"

    def __init__(self, out: _Output) -> None:
        self.out = out
        self._never: asyncio.Future[None] | None = None

    async def connect(self) -> None:
        self._never = asyncio.get_running_loop().create_future()

    async def send(self, record: Record) -> None:
        from mcptool.gateway.spool import Kind  # loaded already: the gateway runs

        try:
            message = json.loads(record.payload)
        except ValueError:
            return
        if record.kind is Kind.TELEMETRY:
            self.out.telemetry(message)
        elif record.kind is Kind.FINDING:
            self.out.analysis(message)

    async def watch(self) -> None:
        assert self._never is not None
        await self._never

    async def close(self) -> None:
        return None


# -- outputs -----------------------------------------------------------------------------


class _Output:
    gateway: Any = None
    command: str | None = None  # the `mcptool ask` command line, once the demo asked

    def started(self, info: dict[str, Any]) -> None: ...

    def telemetry(self, message: dict[str, Any]) -> None: ...

    def analysis(self, record: dict[str, Any]) -> None: ...

    def tick(self, elapsed: float, duration: float | None) -> None: ...

    def asked(self, record: dict[str, Any]) -> None:
        self.command = record["command"]
        for line in _ask_lines(record):
            self.say(line)

    def say(self, line: str) -> None:
        click.echo(line)

    def finished(self, stats: Mapping[str, int]) -> None:
        click.echo(
            f"demo: {stats['windows']} windows, {stats['windows_triggered']} flagged, "
            f"{stats['model_calls']} model calls, {stats['findings_model']} model findings, "
            f"{stats['findings_statistics']} statistics-only findings",
            err=True,
        )
        if self.command is not None:
            click.echo(
                "demo: ask the plant yourself; its config, history and findings stay:\n"
                f"  {self.command}",
                err=True,
            )


def _ask_lines(record: Mapping[str, Any]) -> list[str]:
    """The demo's question, the tool calls the model made, and its answer."""
    lines = [f"ask: {record['question']}"]
    if record.get("why"):
        lines.append(f"  (the Ollama simulator answers: {record['why']})")
    for call in record["calls"]:
        args = json.dumps(call["arguments"], ensure_ascii=False)
        result = call["result"] if len(call["result"]) <= 160 else call["result"][:157] + "..."
        lines.append(
            f"  tool {call['name']}({args}) {'error' if call['error'] else 'ok'}: {result}"
        )
    if not record["answer"]:
        lines.append(f"  no answer: {record['stopped']}")
    elif record["simulated"]:
        lines.append(
            f"  SIMULATED answer (the simulator quotes the tool results): {record['answer']}"
        )
    else:
        lines.append(f"  answer ({record['model']}): {record['answer']}")
    return lines


def _telemetry(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "telemetry",
        "device": message["device"],
        "ts": message["ts"] / 1000.0,
        "values": {r["point"]: r["value"] for r in message["readings"]},
        "units": {r["point"]: r["unit"] for r in message["readings"] if r.get("unit")},
        "bad": [r["point"] for r in message["readings"] if r.get("quality") == "bad"],
    }


class _JsonOutput(_Output):
    def _print(self, record: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()

    def started(self, info: dict[str, Any]) -> None:
        self._print(info)
        _say_ollama(info)

    def telemetry(self, message: dict[str, Any]) -> None:
        self._print(_telemetry(message))

    def analysis(self, record: dict[str, Any]) -> None:
        self._print(record)

    def asked(self, record: dict[str, Any]) -> None:
        self.command = record["command"]
        self._print(record)


class _TextOutput(_Output):
    """Plain lines for a pipe or a log: triggers and findings, not every reading."""

    def started(self, info: dict[str, Any]) -> None:
        _say_ollama(info)

    def analysis(self, record: dict[str, Any]) -> None:
        when = time.strftime("%H:%M:%S")
        if record["type"] == "trigger":
            click.echo(f"{when} trigger {record['device']} [{record['rule']}] {record['detail']}")
        elif record["type"] == "finding":
            click.echo(
                f"{when} finding {record['device']} {record['severity']}: "
                f"{record['summary']} ({_source(record)})"
            )
            for cause in record["suspected_causes"]:
                click.echo(f"    cause: {cause}")
            for action in record["recommended_actions"]:
                click.echo(f"    action: {action}")
        else:
            click.echo(
                f"{when} {record['type']} {record.get('device', '')}: {record.get('reason', '')}"
            )


def _say_ollama(info: dict[str, Any]) -> None:
    if info["ollama"] == "real":
        line = f"demo: using Ollama at {info['url']} with {info['model']} ({info['why']})"
    elif info["ollama"] == "embedded":
        line = (
            f"demo: using the embedded model {info['model']} in this process ({info['why']}); "
            "a small local model: its findings explain, the statistics decide the severity"
        )
    else:
        line = (
            f"demo: using the Ollama simulator at {info['url']} ({info['why']}): its findings "
            "are SIMULATED, scripted from the triggers; `pip install 'mcptool[local-model]'` "
            "or `ollama pull llama3.2` for a real model"
        )
    click.echo(line, err=True)


def _which(info: Mapping[str, Any]) -> str:
    """The live view's header: which model answers."""
    if info.get("ollama") == "real":
        return f"Ollama {info.get('url', '')} ({info.get('model', '')})"
    if info.get("ollama") == "embedded":
        return f"embedded model {info.get('model', '')} (small, local, in-process)"
    return "Ollama simulator: SIMULATED findings"


def _source(record: dict[str, Any]) -> str:
    """Who wrote a finding, as the view shows it under the finding."""
    if record.get("source") == "statistics":
        return f"statistics only: {record.get('reason')}"
    model = str(record.get("model"))
    total = record.get("timings", {}).get("total_ms")
    took = f", {total / 1000:.1f} s" if total else ""
    if model == SIMULATED_MODEL:
        return "simulated answer (Ollama simulator, scripted from the triggers; not a model)"
    label = f"{model}{took}"
    if _small(model):
        label = f"{model}, a small local model{took}"
    notes = []
    if record.get("model_severity"):
        notes.append(f"it rated {record['model_severity']}; the rules set the severity")
    if record.get("ungrounded"):
        notes.append(f"numbers not in the window: {', '.join(record['ungrounded'])}")
    return label + (f"; {'; '.join(notes)}" if notes else "")


def _small(model: str) -> bool:
    """A model of at most a few billion parameters, by its tag (qwen2.5-coder:0.5b)."""
    size = re.search(r"[:\-](\d+(?:\.\d+)?)b\b", model.lower())
    return size is not None and float(size.group(1)) <= 3


class _LiveOutput(_Output):
    """A rich live view: devices and values, trigger events, findings."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console()
        self.values: dict[str, dict[str, Any]] = {}
        self.triggers: deque[dict[str, Any]] = deque(maxlen=6)
        self.findings: deque[dict[str, Any]] = deque(maxlen=3)
        self.info: dict[str, Any] = {}
        self.online: dict[str, str] = {}
        self.elapsed = 0.0
        self.duration: float | None = None
        self.live: Any = None

    def started(self, info: dict[str, Any]) -> None:
        from rich.live import Live

        self.info = info
        self.live = Live(self._render(), console=self.console, refresh_per_second=4)
        self.live.start()

    def telemetry(self, message: dict[str, Any]) -> None:
        self.values[message["device"]] = _telemetry(message)

    def analysis(self, record: dict[str, Any]) -> None:
        if record["type"] == "trigger":
            self.triggers.appendleft(record)
        elif record["type"] == "finding":
            self.findings.appendleft(record)

    def tick(self, elapsed: float, duration: float | None) -> None:
        self.elapsed, self.duration = elapsed, duration
        if self.live is not None:
            self.live.update(self._render())

    def asked(self, record: dict[str, Any]) -> None:
        if self.live is not None:  # the last frame stays; the question and answer go below
            self.live.update(self._render())
            self.live.stop()
            self.live = None
        super().asked(record)

    def say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False)

    def finished(self, stats: Mapping[str, int]) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.stop()
        super().finished(stats)

    def _render(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        which = _which(self.info)
        limit = f" / {self.duration:.0f}" if self.duration else ""
        header = Text(
            f"mcptool demo  ·  {which}  ·  {self.elapsed:.0f}{limit} s  ·  Ctrl-C ends",
            style="bold",
        )
        if self.gateway is not None:  # the last frame, after the gateway stopped, keeps these
            self.online = {d["device"]: d["status"] for d in self.gateway.status()["devices"]}
        online = self.online
        devices = Table(box=None, expand=True, pad_edge=False)
        devices.add_column("device", style="cyan", no_wrap=True)
        devices.add_column("status", no_wrap=True)
        devices.add_column("values")
        for name in DEVICES:
            seen = self.values.get(name)
            status = online.get(name, "starting")
            values = "waiting for the first poll"
            if seen:
                values = "  ".join(
                    f"{p} [bold]{_fmt(v)}[/bold]{seen['units'].get(p, '')}"
                    for p, v in seen["values"].items()
                )
            devices.add_row(
                name, "[green]online" if status == "online" else f"[red]{status}", values
            )
        triggers = Table(box=None, expand=True, pad_edge=False, show_header=False)
        for t in self.triggers:
            when = time.strftime("%H:%M:%S", time.localtime(t["window"]["end"]))
            triggers.add_row(when, t["device"], f"[yellow]{t['rule']}", t["detail"])
        findings = []
        for f in self.findings:
            colour = {"critical": "red", "warning": "yellow"}.get(f["severity"], "green")
            body = Text.from_markup(
                f"[bold {colour}]{f['severity'].upper()}[/] {f['device']}: {f['summary']}\n"
            )
            for cause in f["suspected_causes"]:
                body.append(f"  cause: {cause}\n")
            for action in f["recommended_actions"]:
                body.append(f"  action: {action}\n")
            body.append(f"  ({_source(f)})", style="dim")
            findings.append(body)
        return Group(
            header,
            Panel(devices, title="devices"),
            Panel(triggers if self.triggers else Text("none yet", style="dim"), title="triggers"),
            Panel(
                Group(*findings) if findings else Text("none yet", style="dim"), title="findings"
            ),
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return "n/a" if value is None else str(value)


# -- the simulator's answers for the demo --------------------------------------------------

def _demo_answer(kind: str, body: Mapping[str, Any]) -> str | None:
    """A plausible finding from the prompt's triggers, in the schema's shape.

    The simulator stands in for a model when none is installed; its answers are scripted
    from the statistics the pipeline sent, so the demo shows what a finding looks like.
    Every summary starts "Simulated:" and the model is named ``ollama-simulator``, so no
    published copy can pass for a model's explanation.
    """
    from simulators.ollama import trigger_finding

    fmt = body.get("format")
    if not isinstance(fmt, dict) or kind != "chat":
        return None
    messages = body.get("messages") or ()
    return trigger_finding("\n".join(str(m.get("content", "")) for m in messages), fmt)
