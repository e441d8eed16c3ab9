"""``mcptool gateway``: run the edge gateway from a TOML config, or check the config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from typing import Any

import click

from mcptool.commands.options import plural
from mcptool.commands.stopping import stop_event
from mcptool.gateway.config import ConfigError, GatewayConfig

_CONFIG = click.option(
    "--config",
    "-c",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Gateway config (TOML); `mcptool gateway example` prints a commented one to start from.",
)


@click.group()
def gateway() -> None:
    """Poll Modbus devices and forward every reading to MQTT, the MCP hub or JSON Lines."""


def _load(path: str) -> GatewayConfig | int:
    """The config, with the paths a run will open checked too; else its problems, printed
    one a line (and their count when there are several), and exit status 2."""
    from mcptool.edge import load_config
    from mcptool.gateway.preflight import path_problems

    try:
        config = load_config(path)
        problems = path_problems(config)
        if problems:
            raise ConfigError(path, problems)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"{exc.source}: {problem}", err=True)
        if len(exc.problems) > 1:
            click.echo(f"{plural(len(exc.problems), 'problem')} in {exc.source}", err=True)
        return 2
    return config


@gateway.command()
@click.argument("name", required=False)
def example(name: str | None) -> int:
    """Print example config NAME (e.g. plant) to save and edit; without NAME, list them.

    \b
      mcptool gateway example plant > plant.toml
      mcptool gateway check --config plant.toml
    """
    from mcptool.gateway.example_configs import example_config, example_names

    if name is None:
        click.echo("\n".join(example_names()))
    else:
        click.echo(example_config(name), nl=False)
    return 0


@gateway.command()
@_CONFIG
@click.option(
    "--live",
    is_flag=True,
    help="Also read every point once: value, unit, quality, and a word order that fits "
    "where a value is implausible (exit 1 unless every point is ok).",
)
def check(config_path: str, live: bool) -> int:
    """Validate a config: one line per problem, with its path; exit 2 if any."""
    config = _load(config_path)
    if isinstance(config, int):
        return config
    if live:
        return _check_live(config)
    sinks = [sink.label(settings) for sink, settings in config.enabled_sinks()]
    reads = sum(len(device.plan()) for device in config.devices)
    click.echo(
        f"{config_path}: ok: node {config.node}, {plural(len(config.devices), 'device')}, "
        f"{plural(config.points, 'point')} in {plural(reads, 'read')} a cycle, "
        f"to {', '.join(sinks)}"
    )
    mqtt = config.mqtt
    warning = mqtt and mqtt.nats_warning(config.node, [d.name for d in config.devices])
    if warning:
        click.echo(f"{config_path}: warning: {warning}", err=True)
    return 0


#: Devices read at once by ``check --live``.
_LIVE_CONCURRENCY = 16


def _check_live(config: GatewayConfig) -> int:
    """Read each point once and print one line per point; 0 when every point is ok."""
    from mcptool.modbus.live_check import PointCheck, check_device
    from mcptool.modbus.timeouts import Timeouts

    async def every() -> list[list[PointCheck]]:
        gate = asyncio.Semaphore(_LIVE_CONCURRENCY)

        async def one(device: Any) -> list[PointCheck]:
            async with gate:
                timeouts = Timeouts(connect=device.connect_timeout, response=device.timeout)
                return await check_device(device, timeouts)

        return list(await asyncio.gather(*(one(d) for d in config.devices)))

    checks = [c for device in asyncio.run(every()) for c in device]
    rows = [
        (
            c.device,
            c.point.name,
            f"{c.point.table.value} {c.point.address}",
            "-" if c.value is None else _shown(c.value),
            c.point.unit,
            c.quality + (f"; {c.advice()}" if c.advice() else ""),
        )
        for c in checks
    ]
    heads = ("device", "point", "address", "value", "unit", "quality")
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(5)]
    for row in [heads, *rows]:
        cells = "  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=False))
        click.echo(f"{cells}  {row[5]}")
    bad = sum(1 for c in checks if not c.ok)
    click.echo(f"{plural(len(checks), 'point')}: {len(checks) - bad} ok, {bad} not")
    return 0 if bad == 0 else 1


def _shown(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@gateway.command()
@_CONFIG
@click.option(
    "--status/--no-status",
    default=None,
    help="Live status on the terminal (default: when stderr is a terminal).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log device and destination events.")
def run(config_path: str, status: bool | None, verbose: bool) -> int:
    """Run the gateway until interrupted (Ctrl-C or SIGTERM stop it cleanly)."""
    config = _load(config_path)
    if isinstance(config, int):
        return config
    traced = config.tracing is not None
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        # traced: a line written while a reading is handled ends with its trace id
        format="%(asctime)s %(levelname)s %(message)s" + ("%(trace)s" if traced else ""),
        stream=sys.stderr,
    )
    live = sys.stderr.isatty() if status is None else status
    if config.tracing is None:
        asyncio.run(_run(config, live))
        return 0
    from mcptool import tracing
    from mcptool.commands.nats_options import flush_traces

    tracing.log_trace_ids()
    if config.tracing.endpoint is None:
        # no collector in the config: the standard OTEL_EXPORTER_OTLP_* variables say where
        tracing.configure(None, config.tracing.service, sample_ratio=config.tracing.sample_ratio)
    try:
        asyncio.run(_run(config, live))
    finally:
        flush_traces()  # with an endpoint, the gateway's own provider flushed at its stop
    return 0


async def _run(config: GatewayConfig, live: bool) -> None:
    from mcptool.edge import edge_gateway

    stop = stop_event()
    async with edge_gateway(config) as gw:
        where = (
            f", metrics on http://127.0.0.1:{gw.metrics_port}/metrics" if gw.metrics_port else ""
        )
        polling = plural(len(config.devices), "device")
        click.echo(f"gateway {config.node}: polling {polling}{where}", err=True)
        if live:
            await _live(gw, stop)
        else:
            await stop.wait()
        click.echo("stopping: delivering what is pending", err=True)


async def _live(gw: Any, stop: asyncio.Event) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    with Live(_render(gw.status()), console=console, refresh_per_second=2, transient=True) as view:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            view.update(_render(gw.status()))


def _render(status: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(box=None, show_header=True, pad_edge=False)
    table.add_column("devices")
    table.add_column("readings")
    table.add_column("spool")
    table.add_column("destinations")
    uptime = max(status["uptime"], 1e-9)
    devices = status["devices"]
    offline = [d["device"] for d in devices if d["status"] != "online"]
    spool = status["spool"]
    sinks = "  ".join(
        f"{s['name']}: {s['state']} lag {s['lag']}"
        + (f" dropped {s['dropped']}" if s.get("dropped") else "")
        + (f" ({s['error']})" if s["error"] else "")
        + (f", {s['detail']}" if s.get("detail") else "")
        for s in status["sinks"]
    )
    table.add_row(
        f"{status['devices_online']}/{len(devices)} online"
        + (
            f" (down: {', '.join(offline[:3])}{'...' if len(offline) > 3 else ''})"
            if offline
            else ""
        ),
        f"{status['produced']} ({status['produced'] / uptime:.0f}/s)",
        f"{spool['depth']} queued, oldest {spool['oldest_age']:.1f}s, dropped {spool['dropped']}"
        + ("" if spool.get("ok", True) else f" CANNOT WRITE ({spool['error']})"),
        sinks,
    )
    table.caption = time.strftime("%H:%M:%S")
    return table
