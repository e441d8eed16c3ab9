"""One device for ``read``, ``write`` and ``capture``: its target, its connection, a block read.

The three commands talk to one device at a time (unlike probe and scan, which fan out).
``parse_endpoint`` is the one place their TARGET is understood, and ``open_endpoint``
the one place a connection is opened for it: a read-only ``ModbusConnection``, or a
``WriteConnection`` only when the caller asks for writes. A new transport (a serial
port, RTU over TCP) plugs in here, and the three commands follow.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from mcptool.errors import McptoolError
from mcptool.modbus.connection import Failure, ModbusConnection
from mcptool.modbus.functions import exception_name
from mcptool.modbus.pdu import ProbeRequest, read_values
from mcptool.modbus.probe import ResolveError
from mcptool.modbus.registermap import Table
from mcptool.modbus.targets import TargetError, parse_target
from mcptool.modbus.timeouts import Timeouts
from mcptool.modbus.write import WriteConnection

__all__ = [
    "BlockRead",
    "DeviceError",
    "Endpoint",
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
    """Where one device is reached."""

    host: str
    port: int

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_endpoint(text: str, default_port: int = 502) -> Endpoint:
    """The one device ``text`` names: host, host:port or [v6]:port (not a range)."""
    if not text.isprintable() or len(text) > 300:  # control characters, not UTF-8, too long
        raise TargetError(f"target {_short(text)}: not a host name or address")
    spec = parse_target(text, default_port)
    if spec.network is not None:
        raise TargetError(
            f"target {text!r} is a range: read, write and capture talk to one device "
            "(use `mcptool scan` for ranges)"
        )
    return Endpoint(spec.host, spec.port)


async def open_endpoint(
    endpoint: Endpoint, timeouts: Timeouts, *, writes: bool = False
) -> ModbusConnection:
    """A connection to ``endpoint``: read-only unless ``writes`` (then a ``WriteConnection``)."""
    kind = WriteConnection if writes else ModbusConnection
    try:
        opened = await kind.open(endpoint.host, endpoint.port, connect_timeout=timeouts.connect)
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
    connection: ModbusConnection,
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
