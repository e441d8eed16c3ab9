"""One device for ``read``, ``write`` and ``capture``: its target, its connection, a block read.

The three commands talk to one device at a time (unlike probe and scan, which fan out).
``parse_endpoint`` is the one place their TARGET is understood, and ``open_endpoint``
the one place a connection is opened for it: a read-only ``ModbusConnection``, or a
``WriteConnection`` only when the caller asks for writes. The target syntax is probe's
(``targets.parse_target``): ``HOST:PORT``, ``rtu-tcp://HOST:PORT`` (RTU over TCP), a
serial port (``/dev/ttyUSB0``, ``rtu:///dev/ttyUSB0?baudrate=9600``), so a serial line
or a serial-to-Ethernet converter reaches the three commands through here alone. A
serial line opens a ``SerialBus`` (read-only guard) or, for writes, a ``WriteBus``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from mcptool.errors import McptoolError
from mcptool.modbus.connection import Failure, ModbusConnection
from mcptool.modbus.framing import FramingName
from mcptool.modbus.functions import exception_name
from mcptool.modbus.pdu import ProbeRequest, read_values
from mcptool.modbus.probe import ResolveError
from mcptool.modbus.registermap import Table
from mcptool.modbus.serial_line import SerialBus, SerialSettings
from mcptool.modbus.targets import TargetError, label, parse_target
from mcptool.modbus.timeouts import Timeouts
from mcptool.modbus.write import WriteBus, WriteConnection

#: What ``open_endpoint`` gives: a TCP connection or a serial bus, with one ``exchange``.
Link = ModbusConnection | SerialBus

__all__ = [
    "BlockRead",
    "DeviceError",
    "Endpoint",
    "Link",
    "open_endpoint",
    "parse_endpoint",
    "read_block",
]


class DeviceError(McptoolError):
    """The device could not be reached or did not answer (exit code 1, one line)."""


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one device is reached: a host and port (with the framing spoken over TCP), or
    a serial port (``port`` 0) and its line settings."""

    host: str
    port: int
    framing: FramingName = FramingName.TCP
    serial: SerialSettings | None = None

    @property
    def label(self) -> str:
        """``host:port``, ``rtu-tcp://host:port``, or the serial port's path."""
        return label(self.host, self.port, self.framing)


def parse_endpoint(
    text: str,
    default_port: int = 502,
    framing: FramingName | str = FramingName.TCP,
    serial: SerialSettings | None = None,
) -> Endpoint:
    """The one device ``text`` names: host, host:port, [v6]:port, rtu-tcp://host:port or a
    serial port (not a range). ``framing`` and ``serial`` are the command's defaults for
    what the target does not say (as in ``targets.parse_target``)."""
    if not text.isprintable() or len(text) > 300:  # control characters, not UTF-8, too long
        raise TargetError(f"target {_short(text)}: not a host name or address")
    spec = parse_target(text, default_port, framing, serial)
    if spec.network is not None:
        raise TargetError(
            f"target {text!r} is a range: read, write and capture talk to one device "
            "(use `mcptool scan` for ranges)"
        )
    return Endpoint(spec.host, spec.port, spec.framing, spec.serial)


async def open_endpoint(endpoint: Endpoint, timeouts: Timeouts, *, writes: bool = False) -> Link:
    """A connection to ``endpoint``: read-only unless ``writes`` (then a ``WriteConnection``,
    or a ``WriteBus`` on a serial line). A serial port that cannot be opened raises
    ``SerialPortError`` (a usage error, one line)."""
    if endpoint.serial is not None:
        return await (WriteBus if writes else SerialBus).open(endpoint.serial)
    kind = WriteConnection if writes else ModbusConnection
    try:
        opened = await kind.open(
            endpoint.host, endpoint.port, connect_timeout=timeouts.connect,
            framing=endpoint.framing,
        )  # fmt: skip
    except socket.gaierror as exc:
        raise ResolveError(
            f"cannot resolve host {endpoint.host!r} ({exc.strerror}): "
            "check the name or use an IP address"
        ) from None
    if isinstance(opened, Failure):
        raise DeviceError(f"{endpoint.label}: {opened.outcome.value}: {opened.reason}")
    return opened


@dataclass(frozen=True, slots=True)
class BlockRead:
    """What one read of a block gave: its values, or why not; and the response time."""

    values: tuple[int, ...] | tuple[bool, ...] | None
    error: str | None
    response_ms: float
    exception_code: int | None = None


async def read_block(
    connection: Link,
    unit: int,
    table: Table,
    address: int,
    count: int,
    *,
    timeout: float,
) -> BlockRead:
    """Read ``count`` registers (or bits) of ``table`` from ``address``, through the guard."""
    request = ProbeRequest(table.function, address, count)
    reply, ms = await connection.exchange(unit, request.pdu, timeout=timeout)
    if isinstance(reply, Failure):
        return BlockRead(None, f"{reply.outcome.value}: {reply.reason}", ms)
    code = reply.exception_code
    if code is not None:
        return BlockRead(None, f"exception {code:#04x}: {exception_name(code)}", ms, code)
    return BlockRead(read_values(request, reply.pdu), None, ms)
