"""``mcptool capture``: a live device's registers and identity as a simulator profile."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click

from mcptool.commands.line_options import line_options, serial_defaults
from mcptool.commands.options import Float, Int, Text
from mcptool.errors import UsageError
from mcptool.modbus.capture import (
    Capture,
    TableRange,
    discover,
    parse_range,
    parse_server_id,
    profile_toml,
    sample,
)
from mcptool.modbus.client import Endpoint, open_endpoint, parse_endpoint
from mcptool.modbus.identify import identify
from mcptool.modbus.registermap import Table
from mcptool.modbus.timeouts import PROBE, Timeouts

#: Read when no --range is given: one full read of each table.
DEFAULT_RANGES = tuple(TableRange(t, 0, 124) for t in Table)
_STANDARD = (
    "vendor_name",
    "product_code",
    "revision",
    "vendor_url",
    "product_name",
    "model_name",
    "user_application_name",
)


async def _capture(
    endpoint: Endpoint,
    unit: int,
    ranges: tuple[TableRange, ...],
    timeouts: Timeouts,
    duration: float | None,
    interval: float,
) -> Capture:
    capture = Capture(unit, interval=interval)
    connection = await open_endpoint(endpoint, timeouts)
    try:
        for span in ranges:
            await discover(connection, unit, span, capture, timeout=timeouts.response)
        identity = await identify(connection, unit, timeout=timeouts.response)
        capture.identity = {k: v for k, v in identity.named().items() if k in _STANDARD}
        capture.server_id = parse_server_id(identity.server_id, identity.run_indicator)
        if duration is not None and capture.found:
            loop = asyncio.get_running_loop()
            started = next_at = loop.time()
            while True:
                next_at += interval
                if next_at - started > duration + 1e-9:
                    break
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                await sample(connection, unit, capture, timeout=timeouts.response)
    finally:
        connection.close()
    return capture


@click.command()
@click.argument("target")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Profile file to write (default: stdout).")  # fmt: skip
@click.option("--unit", "-u", type=Int(0, 255), default=1, show_default=True, help="Unit id.")
@click.option("--port", "-p", type=Int(1, 65535), default=502, show_default=True,
              help="Port when TARGET has none.")  # fmt: skip
@click.option(
    "--range",
    "-r",
    "ranges",
    multiple=True,
    metavar="TABLE:FIRST-LAST",
    help="Addresses to read, 0-based (repeatable; default: 0-124 of every table).",
)
@click.option("--duration", type=Float(0, 86400, min_open=True), default=None,
              help="Record this many seconds of values as a replayed series.")  # fmt: skip
@click.option("--interval", type=Float(0, 3600, min_open=True), default=1.0, show_default=True,
              help="Seconds between samples with --duration.")  # fmt: skip
@click.option("--name", type=Text(), default=None,
              help="Profile name (default: the output file's stem).")  # fmt: skip
@click.option("--timeout", type=Float(0, 86400, min_open=True), default=PROBE.response,
              show_default=True, help="Seconds to wait for each reply.")  # fmt: skip
@click.option("--connect-timeout", type=Float(0, 86400, min_open=True), default=PROBE.connect,
              show_default=True, help="Seconds to wait for the connection.")  # fmt: skip
@line_options
def capture(
    target: str,
    output: Path | None,
    unit: int,
    port: int,
    ranges: tuple[str, ...],
    duration: float | None,
    interval: float,
    name: str | None,
    timeout: float,
    connect_timeout: float,
    framing: str,
    baudrate: int,
    parity: str,
    stopbits: str,
) -> int:
    """Read a live device and write a simulator profile that reproduces it.

    TARGET as in `mcptool read`: host:port, rtu-tcp://host:port or a serial port.

    Every address of the ranges that answers becomes a point with its raw register (or
    bit), constant, or with --duration the series recorded every --interval seconds;
    addresses the device refuses stay unmapped; device identification is copied. Serve
    the result with `mcptool simulate modbus --profile FILE`. Only reads are sent.
    """
    if duration is not None and interval > duration:
        raise UsageError(f"--interval {interval} is longer than --duration {duration}")
    if output is not None and not output.parent.is_dir():
        raise UsageError(f"--output {output}: folder {str(output.parent)!r} does not exist")
    spans = tuple(parse_range(r) for r in ranges) or DEFAULT_RANGES
    endpoint = parse_endpoint(target, port, framing, serial_defaults(baudrate, parity, stopbits))
    timeouts = Timeouts(connect=connect_timeout, response=timeout)
    started = time.monotonic()
    result = asyncio.run(_capture(endpoint, unit, spans, timeouts, duration, interval))
    profile_name = name or (output.stem if output is not None else f"captured_unit{unit}")
    text = profile_toml(result, profile_name, endpoint.label)
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {str(output)!r}: {exc.strerror}") from None
        click.echo(
            f"{output}: {result.found} addresses of unit {unit} at {endpoint.label} "
            f"({time.monotonic() - started:.1f} s)",
            err=True,
        )
    return 0 if result.found else 1
