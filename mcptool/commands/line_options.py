"""The options that say how a target is reached: ``--framing`` for TCP targets, and the
serial line's ``--baudrate``, ``--parity``, ``--stopbits`` for serial ones.

One decorator for every command that takes Modbus targets (probe, scan, read, write,
capture), so the same words mean the same thing everywhere; a target's own URL
(``rtu-tcp://``, ``rtu:///dev/ttyUSB0?baudrate=9600``) overrides them (docs/PROBE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from mcptool.commands.options import Int
from mcptool.modbus.framing import FramingName
from mcptool.modbus.serial_line import SerialSettings

__all__ = ["line_options", "serial_defaults"]

_F = TypeVar("_F", bound=Callable[..., Any])


def line_options(command: _F) -> _F:
    """Add ``--framing``, ``--baudrate``, ``--parity`` and ``--stopbits`` to ``command``."""
    decorators = [
        click.option(
            "--framing",
            type=click.Choice([f.value for f in FramingName]),
            default=FramingName.TCP.value,
            show_default=True,
            help="For TCP targets: tcp is Modbus/TCP; rtu is RTU frames over TCP, as "
            "serial-to-Ethernet converters pass them (or write rtu-tcp://HOST:PORT).",
        ),
        click.option(
            "--baudrate",
            type=Int(50, 4_000_000),
            default=19200,
            show_default=True,
            help="Serial targets (/dev/ttyUSB0, rtu:///dev/ttyUSB0?baudrate=9600): baud rate.",
        ),
        click.option(
            "--parity",
            type=click.Choice(["N", "E", "O"], case_sensitive=False),
            default="E",
            show_default=True,
            help="Serial targets: parity none, even or odd.",
        ),
        click.option(
            "--stopbits",
            type=click.Choice(["1", "2"]),
            default="1",
            show_default=True,
            help="Serial targets: stop bits.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def serial_defaults(baudrate: int, parity: str, stopbits: str) -> SerialSettings:
    """The line settings a serial target's URL leaves out (the port is the target's)."""
    return SerialSettings("-", baudrate, parity.upper(), int(stopbits))
