"""``mcptool write``: change registers or coils of one device, on purpose, and confirm it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from mcptool.commands.line_options import line_options, serial_defaults
from mcptool.commands.options import Float, Int
from mcptool.errors import UsageError
from mcptool.modbus.client import Endpoint, open_endpoint, parse_endpoint
from mcptool.modbus.confirmed_write import WriteResult, apply, read_before
from mcptool.modbus.datatypes import ORDERS, TYPES
from mcptool.modbus.modicon import Address, parse_address
from mcptool.modbus.timeouts import PROBE, Timeouts
from mcptool.modbus.typed_read import ReadSpec
from mcptool.modbus.write import (
    WRITE_FUNCTIONS,
    WriteBus,
    WriteConnection,
    WritePlan,
    plan_write,
)


class Refused(UsageError):
    """A write that was not confirmed: nothing was sent."""


def _audit_spec(address: Address, plan: WritePlan, type_: str, order: str, scale: float,
                count: int) -> ReadSpec:  # fmt: skip
    """How the audit line shows the span: in the type the user wrote it as."""
    if address.table.is_bits:
        return ReadSpec(address, "bool", count=max(plan.count, 1))
    if plan.function == 22:
        return ReadSpec(address, "uint16")
    if type_ == "string":
        return ReadSpec(address, "string", order, length=plan.count)
    return ReadSpec(address, type_, order, scale, count)


def _confirm(endpoint: Endpoint, unit: int, text: str) -> None:
    if not click.confirm(f"write to {endpoint.label} unit {unit}: {text}?", default=False):
        raise Refused("not confirmed: nothing was written")


async def _write(
    endpoint: Endpoint,
    unit: int,
    spec: ReadSpec,
    plan: WritePlan,
    timeouts: Timeouts,
    ask: bool,
) -> WriteResult:
    connection = await open_endpoint(endpoint, timeouts, writes=True)
    assert isinstance(connection, WriteConnection | WriteBus)
    try:
        old = await read_before(connection, unit, plan, timeout=timeouts.response)
        if ask:
            shown = "?" if old.values is None else " ".join(map(str, old.values))
            # click.confirm blocks; it runs while nothing else is in flight on this loop.
            _confirm(endpoint, unit, f"{spec.address.text} now {shown}, write fc {plan.function}")
        return await apply(
            connection, endpoint.label, unit, spec, plan, old, timeout=timeouts.response
        )
    finally:
        connection.close()


@click.command()
@click.argument("target")
@click.argument("address")
@click.argument("values", nargs=-1, required=True, metavar="VALUE...")
@click.option("--yes", "-y", is_flag=True, help="Write without asking (needed when not on a TTY).")
@click.option("--unit", "-u", type=Int(0, 255), default=1, show_default=True, help="Unit id.")
@click.option("--port", "-p", type=Int(1, 65535), default=502, show_default=True,
              help="Port when TARGET has none.")  # fmt: skip
@click.option("--base", type=Int(0, 1), default=0, show_default=True,
              help="Whether plain and TABLE:N addresses count from 0 or 1.")  # fmt: skip
@click.option("--type", "-t", "type_", type=click.Choice(TYPES, case_sensitive=False),
              default="uint16", show_default=True, help="Data type of each VALUE.")  # fmt: skip
@click.option("--order", "-o", type=click.Choice(ORDERS, case_sensitive=False), default="ABCD",
              show_default=True, help="Byte/word order of multi-register values.")  # fmt: skip
@click.option("--scale", type=Float(-1e9, 1e9), default=1.0, show_default=True,
              help="The device holds VALUE / scale (as `read --scale` shows it).")  # fmt: skip
@click.option("--length", type=Int(1, 123), default=None,
              help="Registers for --type string (padded with NULs).")  # fmt: skip
@click.option("--function", "-f", type=click.Choice([str(f) for f in WRITE_FUNCTIONS]),
              default=None,
              help="Force a function: 5/15 coils, 6/16 registers, 22 mask write "
                   "(VALUE: AND_MASK OR_MASK), 23 write and read in one request.")  # fmt: skip
@click.option("--timeout", type=Float(0, 86400, min_open=True), default=PROBE.response,
              show_default=True, help="Seconds to wait for each reply.")  # fmt: skip
@click.option("--connect-timeout", type=Float(0, 86400, min_open=True), default=PROBE.connect,
              show_default=True, help="Seconds to wait for the connection.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="The audit record as one JSON object.")
@click.option("--audit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also append the audit record (JSON, one line) to this file.")  # fmt: skip
@line_options
def write(
    target: str,
    address: str,
    values: tuple[str, ...],
    yes: bool,
    unit: int,
    port: int,
    base: int,
    type_: str,
    order: str,
    scale: float,
    length: int | None,
    function: str | None,
    timeout: float,
    connect_timeout: float,
    as_json: bool,
    audit: Path | None,
    framing: str,
    baudrate: int,
    parity: str,
    stopbits: str,
) -> int:
    """Write VALUE... at ADDRESS of the device at TARGET, then read it back.

    TARGET as in `mcptool read`: host:port, rtu-tcp://host:port or a serial port.

    ADDRESS as in `mcptool read` (00001 coils, 40001 holding registers, TABLE:N, N).
    Coils take 0/1, true/false or on/off. Nothing is sent without --yes, or a "yes"
    at the prompt on a terminal. Prints one audit line (target, unit, address, old and
    new value, confirmed or not). Exit code 0 when the read-back confirms the write.
    """
    where = parse_address(address, base)
    type_ = type_.lower()
    plan = plan_write(
        where, list(values), type=type_, order=order, scale=scale, length=length,
        function=None if function is None else int(function),
    )  # fmt: skip
    count = len(values) if type_ != "string" else 1
    spec = _audit_spec(where, plan, type_, order, scale, count)
    endpoint = parse_endpoint(target, port, framing, serial_defaults(baudrate, parity, stopbits))
    timeouts = Timeouts(connect=connect_timeout, response=timeout)
    if audit is not None and not audit.parent.is_dir():
        raise UsageError(f"--audit {audit}: folder {str(audit.parent)!r} does not exist")
    ask = not yes
    if ask and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise Refused(
            f"refusing to write {address} on {endpoint.label} unit {unit} without --yes "
            "(not a terminal to ask on): nothing was sent"
        )
    result = asyncio.run(_write(endpoint, unit, spec, plan, timeouts, ask))
    click.echo(result.json_line() if as_json else result.audit_line())
    if audit is not None:
        try:
            with audit.open("a", encoding="utf-8") as trail:
                trail.write(result.json_line() + "\n")
        except OSError as exc:
            raise UsageError(f"--audit {audit}: cannot append ({exc.strerror})") from None
    return 0 if result.confirmed else 1
