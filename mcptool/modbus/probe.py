"""probe: does this device answer Modbus, how fast, and if not, why.

One read request over a fresh connection, with separate connect and response deadlines,
classified into exactly one ``Outcome``. ``probe`` is the async API, ``probe_sync`` the
facade for scripts that have no event loop.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field, replace
from typing import Any

from mcptool.errors import McptoolError, UsageError
from mcptool.modbus.connection import Failure, ModbusConnection, Outcome
from mcptool.modbus.framing import FramingName
from mcptool.modbus.functions import GATEWAY_ABSENT_CODES, exception_name
from mcptool.modbus.mbap import MalformedField
from mcptool.modbus.pdu import ProbeRequest, read_values
from mcptool.modbus.serial_line import SerialBus, SerialSettings
from mcptool.modbus.targets import label
from mcptool.modbus.timeouts import PROBE, Timeouts

#: An open link to devices: a TCP connection (Modbus/TCP or RTU over TCP) or a serial bus.
Link = ModbusConnection | SerialBus
#: How long a probe that heard nothing in Modbus/TCP waits for the same read framed as
#: RTU (converters answer within a few character times plus the device's turnaround).
RTU_RETRY_TIMEOUT = 1.0

DEFAULT_PORT = 502
DEFAULT_CONNECT_TIMEOUT = PROBE.connect
DEFAULT_TIMEOUT = PROBE.response


class ResolveError(McptoolError):
    """A host name that does not resolve."""


@dataclass(frozen=True, slots=True)
class Identity:
    """What a device says about itself (0x2B/0x0E objects and 0x11 server id)."""

    objects: dict[int, str] = field(default_factory=dict)
    conformity: int | None = None
    server_id: str | None = None
    run_indicator: bool | None = None
    errors: tuple[str, ...] = ()

    OBJECT_NAMES = {  # noqa: RUF012 - a class constant, not a field
        0: "vendor_name",
        1: "product_code",
        2: "revision",
        3: "vendor_url",
        4: "product_name",
        5: "model_name",
        6: "user_application_name",
    }

    def named(self) -> dict[str, str]:
        """Objects keyed by their standard names (``object_0x80`` for private ones)."""
        return {self.OBJECT_NAMES.get(k, f"object_{k:#04x}"): v for k, v in self.objects.items()}

    def summary(self) -> str:
        """One short line: vendor, product code, revision (and server id)."""
        parts = [self.objects[k] for k in (0, 1, 2) if k in self.objects]
        if self.server_id:
            parts.append(f"id {self.server_id}")
        if not parts and self.errors:
            return self.errors[0]
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.named(),
            "conformity": self.conformity,
            "server_id": self.server_id,
            "run_indicator": self.run_indicator,
            "errors": list(self.errors),
        }


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one read of one unit at one address, with its timings."""

    host: str
    port: int
    unit: int | None
    outcome: Outcome
    function: int = 3
    address: int = 0
    count: int = 1
    values: tuple[int, ...] | tuple[bool, ...] | None = None
    exception_code: int | None = None
    malformed: MalformedField | None = None
    reason: str = ""
    connect_ms: float | None = None
    response_ms: float | None = None
    identity: Identity | None = None
    name: str | None = None  # the host name the address was resolved from, if any
    framing: FramingName = FramingName.TCP

    @property
    def target(self) -> str:
        """``host:port`` (brackets around IPv6), ``rtu-tcp://host:port``, or a serial port."""
        return label(self.host, self.port, self.framing)

    @property
    def exception_name(self) -> str | None:
        return None if self.exception_code is None else exception_name(self.exception_code)

    @property
    def device_absent(self) -> bool:
        """A gateway answered (0x0A/0x0B) for a device that is not there."""
        return self.exception_code in GATEWAY_ABSENT_CODES

    @property
    def answered(self) -> bool:
        """The addressed device answered Modbus: values, or its own exception reply."""
        return self.outcome is Outcome.OK or (
            self.outcome is Outcome.EXCEPTION and not self.device_absent
        )

    @property
    def detail(self) -> str:
        """Values for an answer, the reason otherwise: one line for a table."""
        if self.outcome is Outcome.OK and self.values is not None:
            return " ".join(str(int(v)) for v in self.values)
        return self.reason

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record (JSON Lines and CSV use the same keys)."""
        return {
            "target": self.target,
            "framing": self.framing.value,
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "unit": self.unit,
            "function": self.function,
            "address": self.address,
            "count": self.count,
            "outcome": self.outcome.value,
            "answered": self.answered,
            "values": None if self.values is None else [int(v) for v in self.values],
            "exception_code": self.exception_code,
            "exception_name": self.exception_name,
            "malformed": None if self.malformed is None else self.malformed.value,
            "reason": self.reason,
            "connect_ms": _round(self.connect_ms),
            "response_ms": _round(self.response_ms),
            "identity": None if self.identity is None else self.identity.as_dict(),
        }


def _round(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)


def failure_result(
    host: str, port: int, unit: int | None, request: ProbeRequest, failure: Failure, **kw: Any
) -> ProbeResult:
    """A result for a connect or exchange that produced no Modbus answer."""
    return ProbeResult(
        host,
        port,
        unit,
        failure.outcome,
        request.function,
        request.address,
        request.count,
        malformed=failure.malformed,
        reason=failure.reason,
        **kw,
    )


async def read_unit(
    connection: Link,
    host: str,
    port: int,
    unit: int,
    request: ProbeRequest,
    *,
    timeout: float,
    connect_ms: float | None,
) -> ProbeResult:
    """Run ``request`` against ``unit`` over an open connection and classify the reply."""
    reply, response_ms = await connection.exchange(unit, request.pdu, timeout=timeout)
    if isinstance(reply, Failure):
        return failure_result(
            host, port, unit, request, reply, connect_ms=connect_ms, response_ms=response_ms
        )
    code = reply.exception_code
    if code is not None:
        absent = " (gateway answered, device absent)" if code in GATEWAY_ABSENT_CODES else ""
        return ProbeResult(
            host,
            port,
            unit,
            Outcome.EXCEPTION,
            request.function,
            request.address,
            request.count,
            exception_code=code,
            reason=f"exception {code:#04x}: {exception_name(code)}{absent}",
            connect_ms=connect_ms,
            response_ms=response_ms,
        )
    return ProbeResult(
        host,
        port,
        unit,
        Outcome.OK,
        request.function,
        request.address,
        request.count,
        values=read_values(request, reply.pdu),
        connect_ms=connect_ms,
        response_ms=response_ms,
    )


async def probe(
    host: str,
    port: int = DEFAULT_PORT,
    *,
    unit: int = 1,
    function: int = 3,
    address: int = 0,
    count: int = 1,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    timeout: float = DEFAULT_TIMEOUT,
    framing: FramingName | str = FramingName.TCP,
    serial: SerialSettings | None = None,
) -> ProbeResult:
    """Connect, send one read, classify what happens, close.

    Only reads (function 1, 2, 3 or 4) can be asked for: anything else raises
    ``ReadOnlyError`` before a connection is opened. ``framing="rtu"`` sends RTU frames
    over TCP; ``serial`` probes a serial line instead (``host`` is then its port).
    """
    Timeouts(connect=connect_timeout, response=timeout)  # refuses 0, negatives and NaN
    request = ProbeRequest(function, address, count)
    return await probe_request(
        host, port, request, unit=unit, connect_timeout=connect_timeout, timeout=timeout,
        framing=framing, serial=serial,
    )  # fmt: skip


async def probe_request(
    host: str,
    port: int,
    request: ProbeRequest,
    *,
    unit: int = 1,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    timeout: float = DEFAULT_TIMEOUT,
    framing: FramingName | str = FramingName.TCP,
    serial: SerialSettings | None = None,
) -> ProbeResult:
    """``probe`` for an already validated request (what scans and benchmarks reuse)."""
    check_unit(unit)
    framing = FramingName.RTU if serial is not None else FramingName(framing)
    connection = await open_connection(
        host, port, connect_timeout=connect_timeout, framing=framing, serial=serial
    )
    if isinstance(connection, Failure):
        return replace(failure_result(host, port, unit, request, connection), framing=framing)
    try:
        result = await read_unit(
            connection,
            host,
            port,
            unit,
            request,
            timeout=timeout,
            connect_ms=connection.connect_ms,
        )
    finally:
        connection.close()
    result = replace(result, framing=framing)
    if result.reason == _SILENT and framing is FramingName.TCP:
        return await _rtu_instead(result, request, unit, connect_timeout, timeout)
    return result


_SILENT = "connected, no reply before the deadline"


async def _rtu_instead(
    result: ProbeResult, request: ProbeRequest, unit: int, connect_timeout: float, timeout: float
) -> ProbeResult:
    # A serial-to-Ethernet converter in RTU mode passes our MBAP frame to the line, where
    # no device finds a good CRC in it, and stays silent. The same read framed as RTU on
    # a new connection tells a silent Modbus/TCP device from such a converter; it is a
    # read, so it is as harmless as the probe itself.
    connection = await ModbusConnection.open(
        result.host, result.port, connect_timeout=connect_timeout, framing=FramingName.RTU
    )
    if isinstance(connection, Failure):
        return result
    try:
        reply, _ = await connection.exchange(
            unit, request.pdu, timeout=min(timeout, RTU_RETRY_TIMEOUT)
        )
    finally:
        connection.close()
    if isinstance(reply, Failure):
        return result
    hint = (
        f"{result.reason}; the same read framed as RTU was answered (unit {unit}): the "
        f"peer speaks RTU over TCP, as serial converters do; use --framing rtu (or "
        f"rtu-tcp://{result.target})"
    )
    return replace(result, reason=hint)


def check_unit(unit: int) -> None:
    if not 0 <= unit <= 255:
        raise UsageError(f"unit id {unit} is out of range: use 0-255")


async def open_connection(
    host: str,
    port: int,
    *,
    connect_timeout: float,
    framing: FramingName | str = FramingName.TCP,
    serial: SerialSettings | None = None,
) -> Link | Failure:
    """Open a connection (or the serial bus), turning a name that does not resolve into a
    one-line error; a serial port that cannot be opened raises ``SerialPortError``."""
    if serial is not None:
        return await SerialBus.open(serial)
    try:
        return await ModbusConnection.open(
            host, port, connect_timeout=connect_timeout, framing=framing
        )
    except socket.gaierror as exc:
        raise ResolveError(
            f"cannot resolve host {host!r} ({exc.strerror}): check the name or use an IP address"
        ) from None


def probe_sync(host: str, port: int = DEFAULT_PORT, **options: Any) -> ProbeResult:
    """``probe`` for code without an event loop: ``probe_sync("127.0.0.1", 1502, unit=2)``."""
    return asyncio.run(probe(host, port, **options))
