"""``mcptool simulate modbus``: simulated Modbus/TCP devices, with faults, until Ctrl-C."""

from __future__ import annotations

import asyncio
import copy
import json

import click

from mcptool.commands.options import Float, Host, Int
from mcptool.commands.stopping import stop_event, until_stopped
from mcptool.errors import UsageError


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
    help="Inject a fault, e.g. latency:0.2,unit=1,every=3 or exception:6,probability=0.1 "
    "(see docs/SIMULATORS.md). Repeatable.",
)
@click.option(
    "--duration",
    type=Float(0, 31_536_000, min_open=True),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per device.")
def modbus(
    profiles: tuple[str, ...],
    host: str,
    port: int,
    devices: int,
    faults: tuple[str, ...],
    duration: float | None,
    as_json: bool,
) -> int:
    """Run simulated Modbus/TCP devices and print where each one listens.

    \b
    Examples:
      mcptool simulate modbus --port 0
      mcptool simulate modbus --profile gateway --fault latency:0.2,unit=2,every=3
      mcptool simulate modbus --profile power_meter --devices 10 --fault reset,probability=0.01

    Fault kinds: latency, exception, silence, reset, close_after, garbage, fragment,
    wrong_tid, corrupt, refuse; scope with unit=, function=, address=, device=; trigger
    with every=, probability= (and seed=), times=.
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

    sim = ModbusSimulator(expanded, host=host, port=port)
    for fault, spec in zip(fault_list, faults, strict=True):
        try:
            sim.add_fault(fault)
        except FaultError as exc:
            raise FaultError(f'fault "{spec}": {exc}') from None

    async def run() -> None:
        stop = stop_event()
        async with sim:
            for (h, p), profile in zip(sim.addresses, expanded, strict=True):
                units = [u.id for u in profile.all_units()]
                if as_json:
                    line = json.dumps(
                        {"device": profile.name, "host": h, "port": p, "units": units}
                    )
                else:
                    shown = "any" if profile.answer_all_units else ",".join(map(str, units))
                    line = f"{profile.name}: listening on {_hostport(h, p)} (units {shown})"
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


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
