"""``mcptool simulate modbus``: simulated Modbus devices (Modbus/TCP, RTU over TCP, or on a
serial line), with faults, until Ctrl-C."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import click

from mcptool.commands.line_options import line_options, serial_defaults
from mcptool.commands.options import Float, Host, Int, Text
from mcptool.commands.stopping import stop_event, until_stopped
from mcptool.errors import UsageError
from mcptool.modbus.serial_line import SerialSettings
from mcptool.modbus.targets import label


@click.command("modbus")
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    metavar="FILE",
    help="Device profile (TOML), or a bundled one: boiler, boiler_drift, power_meter, "
    "digital_io, gateway. Repeat for several devices. Default: boiler.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, type=Host(), help="Address to listen on."
)
@click.option(
    "--port",
    default=5020,
    show_default=True,
    type=Int(0, 65535),
    help="Port of the first device; the next ones count up. 0: any free port each.",
)
@click.option(
    "--devices",
    default=1,
    show_default=True,
    type=Int(1, 1000),
    help="Copies of each profile, each on its own port.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="SPEC",
    help="Inject a fault, e.g. latency:0.2,unit=1,every=3 or exception:6,probability=0.1; "
    "from=S,until=S hold it only in that window, in seconds since start (from inclusive, "
    "until exclusive), e.g. silence,from=14,until=40 (see docs/SIMULATORS.md). Repeatable.",
)
@click.option(
    "--duration",
    type=Float(0, 31_536_000, min_open=True),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@click.option(
    "--serial",
    metavar="PORT",
    type=Text(),
    default=None,
    help="Put every device on this serial line (e.g. one end of a socat pty pair) instead "
    "of TCP ports, or 'pty' for a pseudo-terminal it creates and prints.",
)
@line_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per device.")
def modbus(
    profiles: tuple[str, ...],
    host: str,
    port: int,
    devices: int,
    faults: tuple[str, ...],
    duration: float | None,
    serial: str | None,
    framing: str,
    baudrate: int,
    parity: str,
    stopbits: str,
    as_json: bool,
) -> int:
    """Run simulated Modbus devices and print where each one listens.

    \b
    Examples:
      mcptool simulate modbus --port 0
      mcptool simulate modbus --framing rtu --port 0       # RTU over TCP
      mcptool simulate modbus --serial pty --baudrate 9600 --parity N
      mcptool simulate modbus --serial /tmp/ttyS1 --profile boiler --profile power_meter
      mcptool simulate modbus --profile gateway --fault latency:0.2,unit=2,every=3
      mcptool simulate modbus --profile power_meter --devices 10 --fault reset,probability=0.01
      mcptool simulate modbus --fault silence,device=boiler,from=14,until=40   # offline 14-40 s

    Fault kinds: latency, exception, silence, reset, close_after, garbage, fragment,
    wrong_tid, corrupt, refuse; scope with unit=, function=, address=, device=; trigger
    with every=, probability= (and seed=), times=; schedule with from= and until= (seconds
    since start).
    """
    # Imported here so `mcptool --help` stays fast.
    from simulators.modbus import FaultError, ModbusSimulator, load_profile, parse_fault

    loaded = [load_profile(p) for p in (profiles or ("boiler",))]
    fault_list = [parse_fault(spec) for spec in faults]
    expanded = []
    for profile in loaded:
        for i in range(devices):
            copy_ = copy.deepcopy(profile)
            if devices > 1:
                copy_.name = f"{profile.name}-{i + 1}"
            expanded.append(copy_)
    if port and port + len(expanded) - 1 > 65535:
        raise UsageError(f"--port {port}: {len(expanded)} devices would pass port 65535")

    on_line = None
    if serial is not None:
        defaults = serial_defaults(baudrate, parity, stopbits)
        on_line = SerialSettings(serial, defaults.baudrate, defaults.parity, defaults.stopbits)
    sim = ModbusSimulator(expanded, host=host, port=port, framing=framing, serial=on_line)
    for fault, spec in zip(fault_list, faults, strict=True):
        try:
            sim.add_fault(fault)
        except FaultError as exc:
            raise FaultError(f'fault "{spec}": {exc}') from None

    async def run() -> None:
        stop = stop_event()
        async with sim:
            if on_line is not None:
                _print_line(sim.serial_path, on_line, expanded, as_json)
            for (h, p), profile in zip(
                [] if on_line is not None else sim.addresses, expanded, strict=False
            ):
                units = [u.id for u in profile.all_units()]
                if as_json:
                    line = json.dumps(
                        {
                            "device": profile.name,
                            "host": h,
                            "port": p,
                            "framing": framing,
                            "units": units,
                        }
                    )
                else:
                    shown = "any" if profile.answer_all_units else ",".join(map(str, units))
                    where = label(h, p, framing)
                    line = f"{profile.name}: listening on {where} (units {shown})"
                click.echo(line)
            for spec in faults:
                click.echo(f"fault: {spec}", err=True)
            click.echo("Ctrl-C to stop", err=True)
            if await until_stopped(stop, duration):
                click.echo("stopped", err=True)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    return 0


def _print_line(path: str, line: SerialSettings, profiles: list[Any], as_json: bool) -> None:
    for profile in profiles:
        units = [u.id for u in profile.all_units()]
        if as_json:
            click.echo(
                json.dumps(
                    {"device": profile.name, "serial": path, "line": line.line, "units": units}
                )
            )
        else:
            shown = "any" if profile.answer_all_units else ",".join(map(str, units))
            click.echo(f"{profile.name}: on serial line {path} at {line.line} (units {shown})")
