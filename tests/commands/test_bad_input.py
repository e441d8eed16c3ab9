"""Every bad value a user can give any command: one line on stderr, exit status 2, never an
internal error, and nothing started.

The commands are found by walking the click tree, so a new command or option is covered
the day it is added: numbers get NaN, infinities, values just outside their range, huge
ones and words; URLs, node ids, model names and files get their own bad values. Nothing
may reach ``asyncio.run`` (where servers, scans and links start): a value is refused
when the command line is parsed, or at least before anything listens or connects.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcptool.cli import cli, main
from mcptool.commands.options import Float, Int, ModelName, NodeId, Text, Url

SECRET = "0123456789abcdef0123456789abcdef"
INVALID_UTF8 = b"\xff\xfe".decode("utf-8", "surrogateescape")  # as Python hands over argv


class Started(BaseException):
    """Raised instead of starting an event loop: ``main`` catches Exception, not this."""


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run(*args: str, stdin: str = "") -> Outcome:
    """``mcptool ARGS`` in-process, as ``main`` runs it, with asyncio.run forbidden."""

    def refuse(coro: Any, **_: Any) -> None:
        coro.close()
        raise Started(f"mcptool {' '.join(args)} got as far as asyncio.run")

    runner = CliRunner()
    real = asyncio.run
    asyncio.run = refuse  # type: ignore[assignment]
    try:
        with runner.isolation(input=stdin) as (out, err, _):
            try:
                main(list(args))
            except SystemExit as exited:
                code = exited.code if isinstance(exited.code, int) else 0
            except Started as started:
                return Outcome(-1, "", str(started))
            else:  # pragma: no cover - main always exits
                code = 0
            stdout = out.getvalue().decode("utf-8", "replace")
            stderr = err.getvalue().decode("utf-8", "replace")
    finally:
        asyncio.run = real  # type: ignore[assignment]
    return Outcome(code, stdout, stderr)


def assert_one_line_usage_error(outcome: Outcome, *names: str) -> None:
    assert outcome.code == 2, outcome
    assert outcome.err.endswith("\n") and outcome.err.count("\n") == 1, outcome
    assert "internal error" not in outcome.err and "Traceback" not in outcome.err
    if names:
        assert any(name in outcome.err for name in names), outcome


# -- the command tree --------------------------------------------------------------------


def leaves(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            yield from leaves(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = dict(leaves(cli))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-input")
    keys = root / "keys"
    keys.write_text(f"node-1 {SECRET}\n")
    os.chmod(keys, 0o600)
    binary = root / "binary"
    binary.write_bytes(b"ok\n\xff\xfe\x00garbage")
    return {"keys": keys, "binary": binary, "dir": root, "missing": root / "missing" / "x"}


def base_args(path: tuple[str, ...], files: dict[str, Path]) -> tuple[list[str], list[str]]:
    """The arguments and options that make ``path`` valid, so that the bad value is the
    only problem."""
    keys = str(files["keys"])
    link = ["--node-id", "node-1", "--key-file", keys]
    return {
        ("probe",): (["127.0.0.1"], []),
        ("scan",): (["127.0.0.1"], []),
        ("hub",): ([], ["--keys", keys]),
        ("worker",): ([], ["--nats", "nats://127.0.0.1:1", "--ollama", "http://127.0.0.1:1"]),
        ("link", "ping"): (["mcp://127.0.0.1:1"], link),
        ("link", "send"): (["mcp://127.0.0.1:1"], [*link, "--data", "x"]),
        ("link", "request"): (["mcp://127.0.0.1:1"], [*link, "--action", "echo"]),
        ("ollama", "generate"): (["hello"], []),
        ("ollama", "chat"): (["hello"], []),
        ("frame", "encode"): ([], ["--type", "PING"]),
        ("frame", "decode"): (["5a01000810" + "00" * 8], []),
        ("gateway", "check"): ([], ["--config", str(files["binary"])]),
        ("read",): (["127.0.0.1", "40001"], []),
        ("write",): (["127.0.0.1", "40001", "1"], ["--yes"]),
        ("capture",): (["127.0.0.1"], []),
        ("gateway", "run"): ([], ["--config", str(files["binary"])]),
        ("context", "serve"): ([], ["--config", str(files["binary"])]),
        ("ask",): (["why?"], ["--config", str(files["binary"])]),
    }.get(path, ([], []))


def bad_numbers(kind: Float | Int) -> list[str]:
    """Values outside ``kind``'s range, non-finite ones, and words."""
    r = kind.range
    values = ["nan", "inf", "-inf", "NaN", "1e400", "", "abc", INVALID_UTF8, "9" * 40, "9" * 400]
    if r.low is not None:
        values += [repr(r.low - 1), repr(-1e300)]
        if r.low_open:
            values.append(repr(r.low))
    if r.high is not None:
        values += [repr(r.high * 2 + 1), repr(1e300)]
        if r.high_open:
            values.append(repr(r.high))
    if r.integer:
        values += ["1.5", "0x10"]
    return values


def bad_values(param: click.Parameter, files: dict[str, Path]) -> list[str]:
    kind = param.type
    if isinstance(kind, Float | Int):
        return bad_numbers(kind)
    if isinstance(kind, Url):
        bare = [] if kind.bare_host else ["notaurl"]  # OLLAMA_HOST=localhost is a host
        path = [] if kind.path else [f"{kind.schemes[0]}://127.0.0.1/path"]
        return [*bare, *path, "", INVALID_UTF8, "ftp://127.0.0.1", "http://127.0.0.1:99999",
                "mqtt://127.0.0.1:0", "mcp://:7878", "x://", "http://127.0.0.1:1/?q=1"]  # fmt: skip
    if isinstance(kind, NodeId):
        return ["", "n" * 65, "é" * 33, "a b", INVALID_UTF8]
    if isinstance(kind, ModelName):
        return ["", " ", "a model", INVALID_UTF8]
    if isinstance(kind, click.Choice):
        return ["no-such-choice", ""]
    if isinstance(kind, click.Path):
        bad = [str(files["missing"]), str(files["dir"])]
        if param.name in ("config_path", "keys_file", "key_file", "tls_cert", "ca", "profiles"):
            bad.append(str(files["binary"]))
        return bad
    if isinstance(param, click.Argument) and kind in (click.STRING, Text):
        return ["", " ", INVALID_UTF8, "\x00", "x" * 100_000]
    if kind == click.STRING:
        return [INVALID_UTF8, "x" * 100_000]  # not UTF-8 on the command line; far too long
    return []


@dataclass(frozen=True)
class Case:
    path: tuple[str, ...]
    option: str  # ``--name``, or an argument's metavar (then ``value`` replaces it)
    value: str

    def __str__(self) -> str:
        return f"{' '.join(self.path)} {self.option} {self.value!r}"


def option_cases(files: dict[str, Path]) -> list[Case]:
    cases = []
    for path, command in COMMANDS.items():
        for param in command.params:
            if not isinstance(param, click.Option) or param.is_flag or not param.opts:
                continue
            for value in bad_values(param, files):
                cases.append(Case(path, param.opts[0], value))
    return cases


def argument_cases(files: dict[str, Path]) -> list[Case]:
    cases = []
    for path, command in COMMANDS.items():
        for param in command.params:
            if isinstance(param, click.Argument):
                for value in bad_values(param, files):
                    cases.append(Case(path, param.human_readable_name, value))
    return cases


def run_case(case: Case, files: dict[str, Path]) -> Outcome:
    arguments, options = base_args(case.path, files)
    if case.option.startswith("-"):
        return run(*case.path, *arguments, *options, case.option, case.value)
    # the bad value in its argument's place, the other arguments valid (read TARGET ADDRESS)
    positional = [p for p in COMMANDS[case.path].params if isinstance(p, click.Argument)]
    place = [p.human_readable_name for p in positional].index(case.option)
    filled = [*arguments[:place], case.value, *arguments[place + 1 :]]
    return run(*case.path, *options, *filled)


def test_every_numeric_option_uses_the_shared_number_types() -> None:
    for path, command in COMMANDS.items():
        for param in command.params:
            if isinstance(param.type, click.types._NumberParamTypeBase):
                assert isinstance(param.type, Float | Int), f"{' '.join(path)} {param.name}"


@pytest.mark.parametrize("kind", ["option", "argument"])
def test_every_bad_value_of_every_option_and_argument_is_one_line_and_exit_2(
    kind: str, files: dict[str, Path]
) -> None:
    failures = []
    cases = option_cases(files) if kind == "option" else argument_cases(files)
    assert len(cases) > (200 if kind == "option" else 20)  # the walk found the commands
    for case in cases:
        outcome = run_case(case, files)
        # the option or argument (HEX|-, TARGET..., --payload: HEX, TARGET, payload), or the
        # value as typed (a file, a unit list, a fault spec is named by what reads it)
        word = case.option.split("|")[0].rstrip(".").lstrip("-")
        names = (case.option, word, case.value[:20], ascii(case.value[:20])[1:-1])
        try:
            assert_one_line_usage_error(outcome, *names)
        except AssertionError:
            failures.append(f"{case}: exit {outcome.code}: {outcome.err!r}")
    assert not failures, "\n".join(failures)


@st.composite
def generated_cases(draw: st.DrawFn, files: dict[str, Path]) -> Case:
    """A command, one of its numeric options, and a generated value it must refuse."""
    numeric = [
        (path, param)
        for path, command in COMMANDS.items()
        for param in command.params
        if isinstance(param, click.Option) and isinstance(param.type, Float | Int)
    ]
    path, param = draw(st.sampled_from(numeric))
    r = param.type.range
    outside = st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not r.contains(v))
    texts = st.one_of(
        outside.map(repr),
        outside.map(lambda v: f"{v:e}" if math.isfinite(v) else str(v).upper()),
        st.text(alphabet="0123456789.eE+-_xnaifNAIF ", max_size=12).filter(
            lambda t: not _parses_in_range(t, param.type)
        ),
        st.binary(min_size=1, max_size=6).map(lambda b: b.decode("utf-8", "surrogateescape")),
    )
    if r.integer:
        texts = st.one_of(
            texts,
            st.integers().filter(lambda v: not r.contains(v)).map(str),
            # past float's range: math.isfinite would overflow on them
            st.tuples(st.integers(10**300, 10**1000), st.sampled_from([1, -1])).map(
                lambda signed: str(signed[0] * signed[1])
            ),
        )
    value = draw(texts.filter(lambda t: not _parses_in_range(t, param.type)))
    return Case(path, param.opts[0], value)


def _parses_in_range(text: str, kind: Float | Int) -> bool:
    try:
        kind.range.parse(text)
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_bad_numbers_are_one_line_and_exit_2(
    data: st.DataObject, files: dict[str, Path]
) -> None:
    case = data.draw(generated_cases(files), label="case")
    outcome = run_case(case, files)
    assert_one_line_usage_error(outcome, case.option)


# -- the reproductions of issue 13, each as it was reported ------------------------------


def bad_config(tmp: Path, name: str, text: str | bytes) -> str:
    path = tmp / f"{name}.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


CONFIG = '[jsonl]\npath = "-"\n[[devices]]\nname = "a"\nhost = "127.0.0.1"\n'


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["hub", "--keys", "{keys}", "--heartbeat", "nan"],
         "error: --heartbeat nan: not a finite number: give a number from 0.01 to 3600"),
        (["probe", "127.0.0.1", "--timeout", "nan"],
         "error: --timeout nan: not a finite number: give a number above 0 and at most 86400"),
        (["scan", "127.0.0.1", "--timeout", "nan"],
         "error: --timeout nan: not a finite number: give a number above 0 and at most 86400"),
        (["probe", "127.0.0.1", "--connect-timeout", "inf"],
         "error: --connect-timeout inf: not a finite number: give a number above 0 and at most"
         " 86400"),
        (["scan", "127.0.0.1", "--rate", "nan"],
         "error: --rate nan: not a finite number: give a number from 0 to 1000000"),
        (["demo", "--duration", "nan"],
         "error: --duration nan: not a finite number: give a number from 1 to 31536000"),
        (["simulate", "modbus", "--duration", "nan"],
         "error: --duration nan: not a finite number: give a number above 0 and at most"
         " 31536000"),
        (["link", "ping", "mcp://127.0.0.1:1", "--node-id", "node-1", "--key-file", "{keys}",
          "--interval", "nan"],
         "error: --interval nan: not a finite number: give a number from 0 to 3600"),
        (["link", "ping", "mcp://127.0.0.1:1", "--node-id", "node-1", "--key-file", "{keys}",
          "--timeout", "-inf"],
         "error: --timeout -inf: not a finite number: give a number above 0 and at most 86400"),
        (["simulate", "ollama", "--load-delay", "nan"],
         "error: --load-delay nan: not a finite number: give a number from 0 to 3600"),
        (["simulate", "mcp", "--heartbeat", "nan"],
         "error: --heartbeat nan: not a finite number: give a number from 0.01 to 3600"),
        (["gateway", "check", "--config", "{scale_nan}"],
         "{scale_nan}: devices[0].points[0].scale: should be a finite number, got nan"),
        (["gateway", "check", "--config", "{binary_config}"],
         "{binary_config}: not UTF-8 text: byte 0xff at offset 6 (a config is TOML, UTF-8)"),
        (["link", "ping", "mcps://127.0.0.1:1", "--node-id", "node-1", "--key-file", "{keys}",
          "--ca", "nope.pem"],
         "error: --ca nope.pem: No such file or directory: give the PEM file of the CA that"
         " signed the hub"),
        (["ollama", "health", "--url", "http://127.0.0.1:99999"],
         "error: --url http://127.0.0.1:99999: the port is not a number from 1 to 65535"),
        (["frame", "encode", "--type", "EVENT", "--payload", "ok\udcff"],
         "error: --payload: not UTF-8 at character 2: give binary payloads with --payload-hex"
         " or @FILE"),
        (["hub", "--keys", "{keys}", "--mqtt", "notaurl"],
         "error: --mqtt notaurl: not a URL: use mqtt://host:port"),
        (["demo", "--mqtt", "notaurl"], "error: --mqtt notaurl: not a URL: use mqtt://host:port"),
        (["simulate", "mcp", "--node", "n" * 100],
         f"error: --node {'n' * 57}...: the id is 100 bytes: a node id is 1 to 64 bytes"
         " (HELLO's limit)"),
        (["simulate", "ollama", "--model", ""],
         "error: --model '': empty: name a model, e.g. llama3.2"),
        (["link", "send", "mcp://127.0.0.1:1", "--node-id", "node-1", "--key-file", "{keys}",
          "--data", "x", "--lines"],
         "error: --lines splits @FILE data into frames: give --data @FILE, or drop --lines"),
        (["ollama", "generate", "-o", "temperature=abc", "hello"],
         "error: --option temperature=abc: temperature is not a number: give a number from 0"
         " to 100"),
        (["gateway", "check", "--config", "{proc_spool}"],
         "{proc_spool}: spool.path: cannot create /proc/nope/spool.db: /proc takes no new files"
         " (No such file or directory)"),
        (["link", "ping", "mcp://127.0.0.1:1", "--node-id", "", "--key-file", "{keys}"],
         "error: --node-id '': 0 bytes: a node id is 1 to 64 bytes (HELLO's limit)"),
    ],
)  # fmt: skip
def test_each_reported_reproduction_is_one_line_naming_the_fix(
    args: list[str], line: str, files: dict[str, Path], tmp_path: Path
) -> None:
    names = {
        "keys": str(files["keys"]),
        "scale_nan": bad_config(
            tmp_path, "scale", CONFIG + 'points = [{name = "p", address = 0, scale = nan}]\n'
        ),
        "binary_config": bad_config(tmp_path, "binary", b"node =\xff\xfe\n"),
        "proc_spool": bad_config(
            tmp_path,
            "spool",
            CONFIG
            + 'points = [{name = "p", address = 0}]\n[spool]\npath = "/proc/nope/spool.db"\n',
        ),
    }
    outcome = run(*(arg.format(**names) if "{" in arg else arg for arg in args))
    assert (outcome.code, outcome.err) == (2, line.format(**names) + "\n")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["probe", INVALID_UTF8], "error: target '\\udcff\\udcfe': not a host name or address"),
        (["scan", "127.0.0.1:99999"],
         "error: port '99999' in '127.0.0.1:99999' is not a port: use 1-65535"),
        (["ollama", "generate", "hi", "--keep-alive", "nan"],
         "error: --keep-alive nan: not a finite number: give a number from -1 to 31536000,"
         " or a duration such as 10m or 1h30m"),
        (["simulate", "modbus", "--fault", "latency:inf"],
         'error: fault "latency:inf": seconds: expected a finite number, got "inf"'),
        (["gateway", "example", "x" * 300],
         f"error: no example config '{'x' * 57}...'; the examples: many-meters, plant"),
        (["probe", "x" * 300], f"error: target '{'x' * 57}...': not a host name or address"),
        (["ollama", "generate", "hi", "-o", "temprature=0"],
         "error: --option temprature=0: unknown model option 'temprature' (did you mean"
         " temperature?)"),
    ],
)  # fmt: skip
def test_values_found_bad_while_walking_the_commands_are_refused_too(
    args: list[str], line: str
) -> None:
    outcome = run(*args)
    assert (outcome.code, outcome.err) == (2, line + "\n")
