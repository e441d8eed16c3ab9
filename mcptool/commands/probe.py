"""``mcptool probe``: does each target answer Modbus, how fast, and if not, why."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace

import click

from mcptool.commands.line_options import line_options, serial_defaults
from mcptool.commands.options import Float, Int
from mcptool.errors import UsageError
from mcptool.modbus.framing import FramingName
from mcptool.modbus.modicon import modicon_hint
from mcptool.modbus.pdu import ProbeRequest
from mcptool.modbus.probe import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    ProbeResult,
    probe_request,
)
from mcptool.modbus.report import CsvWriter, json_line, print_table, stdout_console
from mcptool.modbus.serial_line import SerialSettings
from mcptool.modbus.targets import Target, expand_arguments, parse_target, resolve_targets

#: Probes in flight at once when several targets are given.
CONCURRENCY = 64


def check_targets(texts: list[str], port: int, serial: SerialSettings | None = None) -> None:
    """Refuse a target that cannot be one before anything is resolved or sent."""
    for text in texts:
        # bytes that were not UTF-8, control characters, longer than DNS allows
        if not text.isprintable() or len(parse_target(text, port, serial=serial).host) > 253:
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise UsageError(f"target {shown!r}: not a host name or address")


async def _probe_all(
    texts: list[str],
    port: int,
    unit: int,
    request: ProbeRequest,
    timeout: float,
    connect_timeout: float,
    framing: FramingName = FramingName.TCP,
    serial: SerialSettings | None = None,
) -> list[ProbeResult]:
    targets = await resolve_targets(texts, port, framing, serial)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(target: Target) -> ProbeResult:
        async with gate:
            result = await probe_request(
                target.address, target.port, request, unit=unit,
                connect_timeout=connect_timeout, timeout=timeout,
                framing=target.framing, serial=target.serial,
            )  # fmt: skip
        return result if target.name is None else replace(result, name=target.name)

    return list(await asyncio.gather(*(one(t) for t in targets)))


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option("--unit", "-u", type=Int(0, 255), default=1, show_default=True, help="Unit id.")
@click.option(
    "--function", "-f", type=Int(0, 255), default=3, show_default=True,
    help="Read function: 1 coils, 2 discrete inputs, 3 holding, 4 input registers.",
)  # fmt: skip
@click.option(
    "--address",
    "-a",
    type=Int(0, 65535),
    default=0,
    show_default=True,
    help="First address (0-based).",
)
@click.option(
    "--count",
    "-c",
    type=Int(1, 2000),
    default=1,
    show_default=True,
    help="Registers or bits to read.",
)
@click.option("--port", "-p", type=Int(1, 65535), default=502, show_default=True,
              help="Port for targets written without one.")  # fmt: skip
@click.option("--timeout", "-t", type=Float(0, 86400, min_open=True),
              default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds to wait for the reply once connected.")  # fmt: skip
@click.option("--connect-timeout", type=Float(0, 86400, min_open=True),
              default=DEFAULT_CONNECT_TIMEOUT, show_default=True,
              help="Seconds to wait for the connection.")  # fmt: skip
@line_options
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one object per probe.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
def probe(
    targets: tuple[str, ...],
    unit: int,
    function: int,
    address: int,
    count: int,
    port: int,
    timeout: float,
    connect_timeout: float,
    framing: str,
    baudrate: int,
    parity: str,
    stopbits: str,
    as_json: bool,
    as_csv: bool,
) -> int:
    """Send one read to each TARGET and say what happened.

    TARGET is host, host:port, [ipv6]:port, a CIDR range or @file; rtu-tcp://HOST:PORT
    for RTU over TCP; a serial port (/dev/ttyUSB0 or rtu:///dev/ttyUSB0?baudrate=9600&
    parity=N) for a serial line. Only reads are ever
    sent (function 1-4). Exit code 0 when every target answered Modbus (values or its
    own exception; a gateway's 0x0A/0x0B means the device is absent), 1 otherwise.
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv exclude each other: pick one")
    request = ProbeRequest(function, address, count)  # refuses writes before any connect
    texts = expand_arguments(targets)
    serial = serial_defaults(baudrate, parity, stopbits)
    check_targets(texts, port, serial)
    results = asyncio.run(
        _probe_all(
            texts, port, unit, request, timeout, connect_timeout, FramingName(framing), serial
        )
    )
    if as_json:
        for result in results:
            click.echo(json_line(result))
    elif as_csv:
        writer = CsvWriter(sys.stdout)
        for result in results:
            writer.write(result)
    else:
        print_table(stdout_console(), results)
    hint = modicon_hint(function, address)
    if hint is not None and any(r.exception_code == 0x02 for r in results):
        click.echo(f"hint: {hint}", err=True)  # illegal data address at 40001: Modicon numbering
    return 0 if all(r.answered for r in results) else 1
