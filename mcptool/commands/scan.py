"""``mcptool scan``: which of many targets and unit ids answer Modbus, and who they are."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mcptool.commands.line_options import line_options, serial_defaults
from mcptool.commands.options import Float, Int
from mcptool.commands.probe import check_targets
from mcptool.modbus.framing import FramingName
from mcptool.modbus.pdu import ProbeRequest
from mcptool.modbus.probe import ProbeResult
from mcptool.modbus.report import (
    CsvWriter,
    hidden_line,
    json_line,
    print_table,
    split_answered,
    stdout_console,
)
from mcptool.modbus.scan import Scanner, ScanOptions
from mcptool.modbus.serial_line import SerialSettings
from mcptool.modbus.targets import expand_arguments, parse_units, resolve_targets


async def _scan(
    texts: list[str],
    port: int,
    options: ScanOptions,
    emit: Callable[[ProbeResult], None],
    progress: Progress | None,
    framing: FramingName = FramingName.TCP,
    serial: SerialSettings | None = None,
) -> Scanner:
    targets = await resolve_targets(texts, port, framing, serial)
    task = None
    if progress is not None:
        task = progress.add_task("scanning", total=len(targets) * len(options.units))

    def advance(n: int) -> None:
        if progress is not None and task is not None:
            progress.advance(task, n)

    scanner = Scanner(targets, options, on_progress=advance)
    async for result in scanner.results():
        emit(result)
    return scanner


@click.command()
@click.argument("targets", nargs=-1, metavar="TARGETS...")
@click.option("--file", "-F", "files", multiple=True, type=click.Path(dir_okay=False),
              help="Read targets from a file (one or more per line, # comments).")  # fmt: skip
@click.option("--units", "-u", default="1", show_default=True,
              help="Unit ids: a list or ranges, e.g. 1-247 or 1,2,10-20.")  # fmt: skip
@click.option("--identify", "-i", is_flag=True,
              help="Ask devices that answer who they are (0x2B/0x0E, 0x11).")  # fmt: skip
@click.option("--function", "-f", type=Int(0, 255), default=3, show_default=True,
              help="Read function: 1 coils, 2 inputs, 3 holding, 4 input registers.")  # fmt: skip
@click.option(
    "--address", "-a", type=Int(0, 65535), default=0, show_default=True, help="First address."
)
@click.option(
    "--count", "-c", type=Int(1, 2000), default=1, show_default=True, help="Registers or bits."
)
@click.option("--port", "-p", type=Int(1, 65535), default=502, show_default=True,
              help="Port for targets written without one.")  # fmt: skip
@click.option("--concurrency", "-n", type=Int(1, 10_000), default=64, show_default=True,
              help="Connections open at once.")  # fmt: skip
@click.option("--per-host", type=Int(1, 10_000), default=1, show_default=True,
              help="Connections open at once to one host; a unit sweep shares them.")  # fmt: skip
@click.option("--rate", type=Float(0, 1_000_000), default=0, show_default=True,
              help="New connections per second (0: no limit).")  # fmt: skip
@click.option("--retries", type=Int(0, 100), default=0, show_default=True,
              help="Extra attempts after a timeout, refusal, reset or close.")  # fmt: skip
@click.option("--timeout", "-t", type=Float(0, 86400, min_open=True), default=1.0,
              show_default=True, help="Seconds to wait for each reply.")  # fmt: skip
@click.option("--connect-timeout", type=Float(0, 86400, min_open=True), default=1.0,
              show_default=True, help="Seconds to wait for each connection.")  # fmt: skip
@click.option("--all", "show_all", is_flag=True,
              help="Table: list every probe, not only the targets that answered.")  # fmt: skip
@line_options
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one object per probe.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
def scan(
    targets: tuple[str, ...],
    files: tuple[str, ...],
    units: str,
    identify: bool,
    function: int,
    address: int,
    count: int,
    port: int,
    concurrency: int,
    per_host: int,
    rate: float,
    retries: int,
    timeout: float,
    connect_timeout: float,
    show_all: bool,
    framing: str,
    baudrate: int,
    parity: str,
    stopbits: str,
    as_json: bool,
    as_csv: bool,
) -> int:
    """Probe many TARGETS (hosts, host:port, CIDR ranges, @files) over unit-id sweeps.

    One connection per target serves its whole sweep; one connection at a time per host
    unless --per-host says otherwise. A serial port (/dev/ttyUSB0, rtu:///dev/ttyUSB0?
    baudrate=9600) is a bus: its units are asked one at a time. Only reads are ever
    sent. JSON Lines and CSV stream as results arrive; the table lists what answered.
    Exit code 0 when at least one device answered Modbus, 1 when none did.
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv exclude each other: pick one")
    if not targets and not files:
        raise click.UsageError("no targets: give hosts, ranges, @file or --file")
    options = ScanOptions(
        units=parse_units(units),
        request=ProbeRequest(function, address, count),
        connect_timeout=connect_timeout,
        timeout=timeout,
        identify=identify,
        concurrency=concurrency,
        per_host=per_host,
        rate=rate,
        retries=retries,
    )
    texts = expand_arguments(targets, files)
    serial = serial_defaults(baudrate, parity, stopbits)
    check_targets(texts, port, serial)
    collected: list[ProbeResult] = []
    emit: Callable[[ProbeResult], None]
    if as_json:
        emit = lambda result: click.echo(json_line(result))  # noqa: E731
    elif as_csv:
        emit = CsvWriter(sys.stdout).write
    else:
        emit = collected.append

    err = Console(stderr=True)
    progress: Any = None
    if err.is_terminal:
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
    with progress if progress is not None else nullcontext():
        scanner = asyncio.run(
            _scan(texts, port, options, emit, progress, FramingName(framing), serial)
        )

    if not (as_json or as_csv):
        order = {(t.address, t.port): i for i, t in enumerate(scanner.targets)}
        shown, hidden = split_answered(collected)
        if show_all:
            shown, hidden = collected, Counter()
        shown.sort(key=lambda r: (order.get((r.host, r.port), 0), r.unit or 0))
        out = stdout_console()
        if shown:
            print_table(out, shown, identity=identify)
        if (rest := hidden_line(hidden)) is not None:
            out.print(rest, highlight=False)
        out.print(scanner.summary.line(), highlight=False)
    else:
        err.print(scanner.summary.line(), highlight=False)
    return 0 if scanner.summary.devices else 1
