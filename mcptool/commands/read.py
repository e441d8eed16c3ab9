"""``mcptool read``: typed values from one device, once or continuously, with mbpoll's habits."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime
import json
import math
import sys
import time
from collections.abc import Callable

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from mcptool.commands.line_options import line_options, serial_defaults
from mcptool.commands.options import Float, Int
from mcptool.modbus.client import DeviceError, Endpoint, Link, open_endpoint, parse_endpoint
from mcptool.modbus.datatypes import ORDERS, TYPES, Value
from mcptool.modbus.modicon import parse_address
from mcptool.modbus.timeouts import PROBE, Timeouts
from mcptool.modbus.typed_read import ReadSpec, ResponseStats, Sample, read_sample


def _shown(value: Value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _json_value(value: Value) -> Value | None:
    # NaN and the infinities are not JSON: null, with the registers beside it in "raw"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _stamp(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(timespec="milliseconds")


class _Printer:
    """Prints samples as a table (a header, then one row per sample), JSON Lines or CSV."""

    def __init__(self, spec: ReadSpec, endpoint: Endpoint, unit: int, fmt: str, many: bool):
        self.spec, self.endpoint, self.unit, self.fmt, self.many = spec, endpoint, unit, fmt, many
        self.labels = spec.labels()
        self._csv = csv.writer(sys.stdout, lineterminator="\n") if fmt == "csv" else None
        self._header = False

    def __call__(self, sample: Sample) -> None:
        if self.fmt == "json":
            self._json(sample)
        elif self._csv is not None:
            if not self._header:
                self._csv.writerow(["time", *self.labels, "response_ms", "error"])
                self._header = True
            values = sample.values or [""] * len(self.labels)
            self._csv.writerow(
                [_stamp(sample.time), *values, f"{sample.response_ms:.3f}", sample.error or ""]
            )
        elif self.many:
            self._row(sample)
        else:
            self._single(sample)
        sys.stdout.flush()

    def _json(self, sample: Sample) -> None:
        record = {
            "time": _stamp(sample.time),
            "target": self.endpoint.label,
            "unit": self.unit,
            "table": self.spec.address.table.value,
            "type": self.spec.type,
            "order": self.spec.order,
            "values": None
            if sample.values is None
            else [
                {
                    "address": label,
                    "register": self.spec.address.address + i * self.spec.width,
                    "value": _json_value(value),
                }
                for i, (label, value) in enumerate(zip(self.labels, sample.values, strict=True))
            ],
            "raw": None if sample.raw is None else list(sample.raw),
            "response_ms": round(sample.response_ms, 3),
            "error": sample.error,
        }
        click.echo(json.dumps(record))

    def _single(self, sample: Sample) -> None:
        if sample.values is None:
            click.echo(f"{self.labels[0]}: {sample.error}")
            return
        width = max(len(label) for label in self.labels)
        for label, value in zip(self.labels, sample.values, strict=True):
            click.echo(f"{label:>{width}}  {_shown(value)}")

    def _row(self, sample: Sample) -> None:
        widths = [max(len(label), 12) for label in self.labels]
        if not self._header:
            heads = "  ".join(f"{label:>{w}}" for label, w in zip(self.labels, widths, strict=True))
            click.echo(f"{'time':<12}  {heads}  {'ms':>8}")
            self._header = True
        clock = datetime.datetime.fromtimestamp(sample.time).strftime("%H:%M:%S.%f")[:12]
        if sample.values is None:
            click.echo(f"{clock:<12}  {sample.error}")
            return
        cells = "  ".join(f"{_shown(v):>{w}}" for v, w in zip(sample.values, widths, strict=True))
        click.echo(f"{clock:<12}  {cells}  {sample.response_ms:8.3f}")


class _LiveTable:
    """On a terminal, a poll redraws one table in place (``watch``-style): each value with
    its minimum, maximum and the reads it changed in, and the last reply's time and error.
    Rows per read (``_Printer``) stay for pipes, files and ``--rows``, where a log is wanted.
    """

    def __init__(self, spec: ReadSpec, endpoint: Endpoint, unit: int, console: Console) -> None:
        self.title = f"{endpoint.label} unit {unit} {spec.type} {spec.order}"
        self.labels = spec.labels()
        self.last: list[Value] | None = None
        self.low: list[Value | None] = [None] * len(self.labels)
        self.high: list[Value | None] = [None] * len(self.labels)
        self.changes = [0] * len(self.labels)
        self.reads = self.failed = 0
        self.sample: Sample | None = None
        self.live = Live(self.render(), console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> _LiveTable:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()  # the last table stays on the screen

    def __call__(self, sample: Sample) -> None:
        self.reads += 1
        self.sample = sample
        if sample.values is None:
            self.failed += 1
        else:
            for i, value in enumerate(sample.values):
                if self.last is not None and value != self.last[i]:
                    self.changes[i] += 1
                self.low[i] = _extreme(min, self.low[i], value)
                self.high[i] = _extreme(max, self.high[i], value)
            self.last = list(sample.values)
        self.live.update(self.render(), refresh=True)

    def render(self) -> Table:
        sample = self.sample
        when = (
            datetime.datetime.fromtimestamp(sample.time).strftime("%H:%M:%S.%f")[:12]
            if sample
            else "waiting"
        )
        caption = f"{self.reads} reads, {self.failed} failed; last at {when}"
        if sample is not None and sample.values is not None:
            caption += f" in {sample.response_ms:.3f} ms"
        elif sample is not None:
            caption += f": {sample.error}"
        table = Table(title=self.title, caption=caption)
        for name in ("address", "value", "min", "max", "changes"):
            table.add_column(name, justify="left" if name == "address" else "right")
        for i, label in enumerate(self.labels):
            cells = [self.last[i] if self.last else None, self.low[i], self.high[i]]
            table.add_row(
                label, *("" if c is None else _shown(c) for c in cells), str(self.changes[i])
            )
        return table


def _extreme(pick: Callable[..., Value], old: Value | None, new: Value) -> Value | None:
    """min/max over the numbers a point took (strings and NaN have no order: blank)."""
    if isinstance(new, str) or (isinstance(new, float) and math.isnan(new)):
        return old
    return new if old is None else pick(old, new)


async def _poll(
    endpoint: Endpoint,
    unit: int,
    spec: ReadSpec,
    timeouts: Timeouts,
    interval: float | None,
    samples: int | None,
    emit: Callable[[Sample], None],
    stats: ResponseStats,
) -> None:
    loop = asyncio.get_running_loop()
    connection: Link | None = None
    taken = 0
    next_at = loop.time()
    try:
        while samples is None or taken < samples:
            if connection is None or not connection.usable:
                if connection is not None:
                    connection.close()
                    connection = None
                try:
                    connection = await open_endpoint(endpoint, timeouts)
                except DeviceError as exc:
                    if interval is None:
                        raise  # one read: the device's absence is the answer
                    # polling: a device away for a while is a row, and the poll goes on
                    sample = Sample(time.time(), None, None, str(exc), 0.0)
            if connection is not None:
                sample = await read_sample(connection, unit, spec, timeout=timeouts.response)
            stats.add(sample)
            emit(sample)
            taken += 1
            if interval is None or (samples is not None and taken >= samples):
                break
            # Fixed-rate ticks (a slow reply does not push every later one back).
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
    finally:
        if connection is not None:
            connection.close()


@click.command()
@click.argument("target")
@click.argument("address")
@click.option("--unit", "-u", type=Int(0, 255), default=1, show_default=True, help="Unit id.")
@click.option("--port", "-p", type=Int(1, 65535), default=502, show_default=True,
              help="Port when TARGET has none.")  # fmt: skip
@click.option("--base", type=Int(0, 1), default=0, show_default=True,
              help="Whether plain and TABLE:N addresses count from 0 or 1 (Modicon numbers "
                   "always count from 1).")  # fmt: skip
@click.option("--type", "-t", "type_", type=click.Choice(TYPES, case_sensitive=False),
              default="uint16", show_default=True, help="Data type of each value.")  # fmt: skip
@click.option("--order", "-o", type=click.Choice(ORDERS, case_sensitive=False), default="ABCD",
              show_default=True,
              help="Byte/word order: ABCD big-endian, CDAB word swap, BADC, DCBA.")  # fmt: skip
@click.option("--scale", type=Float(-1e9, 1e9), default=1.0, show_default=True,
              help="Multiply each numeric value by this.")  # fmt: skip
@click.option("--count", "-c", type=Int(1, 2000), default=1, show_default=True,
              help="Values to read, one after the other.")  # fmt: skip
@click.option("--length", type=Int(1, 125), default=None,
              help="Registers per value for --type string.")  # fmt: skip
@click.option("--interval", "-i", type=Float(0, 86400, min_open=True), default=None,
              help="Poll every this many seconds until Ctrl-C (or --samples).")  # fmt: skip
@click.option(
    "--samples",
    "-n",
    type=Int(1, 10**9),
    default=None,
    help="Stop after this many reads (with --interval; default: until Ctrl-C).",
)
@click.option("--timeout", type=Float(0, 86400, min_open=True), default=PROBE.response,
              show_default=True, help="Seconds to wait for each reply.")  # fmt: skip
@click.option("--connect-timeout", type=Float(0, 86400, min_open=True), default=PROBE.connect,
              show_default=True, help="Seconds to wait for the connection.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one object per read.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
@click.option("--rows", is_flag=True,
              help="With --interval on a terminal: a row per read instead of one table "
                   "redrawn in place.")  # fmt: skip
@line_options
def read(
    target: str,
    address: str,
    unit: int,
    port: int,
    base: int,
    type_: str,
    order: str,
    scale: float,
    count: int,
    length: int | None,
    interval: float | None,
    samples: int | None,
    timeout: float,
    connect_timeout: float,
    as_json: bool,
    as_csv: bool,
    rows: bool,
    framing: str,
    baudrate: int,
    parity: str,
    stopbits: str,
) -> int:
    """Read typed values at ADDRESS from the device at TARGET: host, host:port, [v6]:port,
    rtu-tcp://host:port (RTU over TCP) or a serial port (/dev/ttyUSB0, rtu:///dev/ttyUSB0?
    baudrate=9600&parity=N).

    ADDRESS is a Modicon number (40001 holding, 30001 input, 10001 discrete, 00001 coil;
    400001 six-digit forms), TABLE:N (holding:0, input:0, coil:0, discrete:0) or a plain
    holding register N; --base says whether N counts from 0 or 1. Only reads are sent.
    Exit code 0 when every read answered with values, 1 otherwise.
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv exclude each other: pick one")
    if samples is not None and interval is None and samples > 1:
        raise click.UsageError("--samples needs --interval SECONDS between the reads")
    spec = ReadSpec(parse_address(address, base), type_, order, scale, count, length)
    endpoint = parse_endpoint(target, port, framing, serial_defaults(baudrate, parity, stopbits))
    timeouts = Timeouts(connect=connect_timeout, response=timeout)
    many = interval is not None
    fmt = "json" if as_json else "csv" if as_csv else "table"
    stats = ResponseStats()
    emit: Callable[[Sample], None]
    view: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if many and fmt == "table" and not rows and sys.stdout.isatty():
        emit = view = _LiveTable(spec, endpoint, unit, Console())
    else:
        emit = _Printer(spec, endpoint, unit, fmt, many)
    # Ctrl-C ends a continuous poll; the statistics still follow.
    with view, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_poll(endpoint, unit, spec, timeouts, interval, samples, emit, stats))
    if many:
        click.echo(stats.line(), err=True)
    return 0 if stats.failed == 0 and stats.times else 1
