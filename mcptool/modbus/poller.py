"""The poller: one scheduler and one TCP connection per device address, reads planned once.

Each host:port is polled by its own task on its own connection, so a slow or dead device
only ever delays the units behind the same address (a Modbus gateway serves one request
at a time anyway). A poll runs the unit's planned reads (see ``registermap``) one after
another, decodes every reply in bulk and hands one ``PollResult`` to the caller.

Failures are told apart:

- the device is gone (refused, connect timeout, timeout after connect, reset, malformed
  reply, gateway exception 0x0A/0x0B): the poll is dropped, the device goes offline
  (``DeviceStatus``) and is retried with exponential backoff; the connection is reopened
  when it is the connection that failed (see ``_ConnectionScheduler``);
- a point the device refuses (exception 0x02 illegal address / 0x03 illegal value on a
  merged read): the read is split in halves until the refused points are isolated;
  those points are reported bad (value None, an error text) on every poll, the rest of
  the plan keeps working, and the full plan is tried again after ``retry_bad_after``;
- any other exception (0x04 device failure, 0x06 busy, ...): that read's points are bad
  for this poll only.

The poller talks through the same ``ModbusConnection`` as probe and scan (one Modbus
core, one read-only guard: a planned read that is not a well-formed read is refused
before it is sent), and reads each reply's register bytes straight out of the checked
PDU (it decodes 100 values with one struct call). Failures come classified once
(``outcome``); the poller reports their ``ErrorKind``.

Devices behind one host:port share one connection, so a setting of the connection
itself (``connect_timeout``) must be the same for all of them:
``shared_connection_problems`` says which differ, and ``gateway check`` reports it.
Everything else (unit, interval, response timeout, backoff, plan) is each unit's own.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from mcptool.backoff import Backoff
from mcptool.errors import McptoolError, UsageError
from mcptool.modbus.connection import ModbusConnection
from mcptool.modbus.framing import FramingName
from mcptool.modbus.functions import GATEWAY_ABSENT_CODES, exception_name
from mcptool.modbus.outcome import REFUSED_POINT_CODES, ErrorKind, Failure, exception_kind
from mcptool.modbus.registermap import (
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    Point,
    ReadRequest,
    Value,
    plan_reads,
)
from mcptool.modbus.serial_line import SerialBus, SerialPortError, SerialSettings
from mcptool.modbus.targets import label
from mcptool.modbus.timeouts import POLL

#: An open link: a TCP connection (Modbus/TCP or RTU over TCP) or a serial bus.
Link = ModbusConnection | SerialBus

log = logging.getLogger(__name__)

__all__ = [
    "DevicePoller",
    "DeviceSpec",
    "DeviceStatus",
    "ErrorKind",
    "ModbusExceptionReply",
    "PollError",
    "PollResult",
    "Poller",
    "PollerHooks",
    "shared_connection_problems",
]

#: Settings of the connection itself: devices behind one host:port (or on one serial
#: port) must agree on them.
SHARED_SETTINGS = ("connect_timeout", "framing", "serial")


class PollError(McptoolError):
    """A device failed as a whole (it goes offline); ``kind`` says how."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ModbusExceptionReply(PollError):
    """The device answered a read with a Modbus exception code."""

    def __init__(self, code: int) -> None:
        super().__init__(exception_kind(code), f"exception 0x{code:02X} {exception_name(code)}")
        self.code = code


def _failed(failure: Failure) -> PollError:
    return PollError(failure.kind, failure.reason)


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """What to poll on one device connection and how."""

    name: str
    host: str  # or the serial port, for a device on a serial line
    points: tuple[Point, ...]
    port: int = 502  # 0 on a serial line
    unit: int = 1
    interval: float = 1.0
    timeout: float = POLL.response
    connect_timeout: float = POLL.connect
    max_gap: int = 10
    max_registers: int = MAX_READ_REGISTERS
    max_bits: int = MAX_READ_BITS
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    retry_bad_after: float = 300.0
    #: RTU frames instead of Modbus/TCP (always on a serial line; over TCP: a converter).
    framing: FramingName = FramingName.TCP
    serial: SerialSettings | None = None

    def plan(self) -> list[ReadRequest]:
        return plan_reads(
            self.points,
            max_gap=self.max_gap,
            max_registers=self.max_registers,
            max_bits=self.max_bits,
        )


@dataclass(slots=True)
class PollResult:
    """One poll of one device: ``values[i]`` belongs to ``points[i]`` (None when bad)."""

    device: str
    timestamp: float
    points: tuple[Point, ...]
    values: list[Value | None]
    errors: dict[int, str] = field(default_factory=dict)
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device: str
    online: bool
    reason: str = ""
    since: float = 0.0
    bad_points: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "device": self.device,
            "status": "online" if self.online else "offline",
            "reason": self.reason,
            "since": round(self.since, 3),
            "bad_points": list(self.bad_points),
        }


class PollerHooks:
    """What the poller tells its owner; override what you need (all run in the loop)."""

    def on_result(self, result: PollResult) -> None:
        """A poll finished (possibly with some bad points)."""

    def on_status(self, status: DeviceStatus) -> None:
        """A device went online or offline, or its set of bad points changed."""

    def on_error(self, device: str, kind: ErrorKind) -> None:
        """A read or connect failed; ``kind`` is for counting."""

    def on_overrun(self, device: str) -> None:
        """A poll took longer than the interval, so a tick was skipped."""


async def _open(spec: DeviceSpec) -> Link:
    """A connection to the device's host:port (or its serial bus), or ``PollError``."""
    if spec.serial is not None:
        try:
            return await SerialBus.open(spec.serial)
        except SerialPortError as exc:
            raise PollError(ErrorKind.UNREACHABLE, str(exc)) from None
    try:
        conn = await ModbusConnection.open(
            spec.host, spec.port, connect_timeout=spec.connect_timeout, framing=spec.framing
        )
    except socket.gaierror as exc:
        raise PollError(
            ErrorKind.UNREACHABLE, f"cannot resolve {spec.host}: {exc.strerror or exc}"
        ) from None
    if isinstance(conn, Failure):
        raise _failed(conn)
    return conn


def shared_connection_problems(specs: Sequence[DeviceSpec]) -> list[str]:
    """One line for each connection setting that devices sharing a host:port disagree on."""
    groups: dict[tuple[str, int], list[DeviceSpec]] = {}
    for spec in specs:
        groups.setdefault((spec.host, spec.port), []).append(spec)
    problems = []
    for (host, port), group in groups.items():
        for name in SHARED_SETTINGS:
            values = {getattr(spec, name) for spec in group}
            if len(values) > 1:
                devices = ", ".join(f"{s.name}={_shown(getattr(s, name))}" for s in group)
                problems.append(
                    f"{name} differs between devices that share the connection to "
                    f"{label(host, port)} ({devices}): give them one value"
                )
    return problems


def _shown(value: object) -> object:
    return value.line if isinstance(value, SerialSettings) else value


class DevicePoller:
    """One device (unit): its read plan, bad points, status and polls.

    The ``Poller`` schedules it on the connection of its host:port; for a one-off poll,
    ``await connect()``, ``await poll_once()``, ``await close()``.
    """

    def __init__(self, spec: DeviceSpec, hooks: PollerHooks) -> None:
        self.spec = spec
        self.hooks = hooks
        self._full_plan = spec.plan()
        # by id(): a frozen dataclass hashes all its fields on every lookup
        self._index = {id(point): i for i, point in enumerate(spec.points)}
        self._slots: dict[int, tuple[int, ...]] = {}
        self._set_plan(list(self._full_plan))
        self._bad: dict[Point, str] = {}
        self._bad_since = 0.0
        self._conn: Link | None = None
        self.status = DeviceStatus(spec.name, False, "not polled yet", time.time())
        self.polls = 0
        self.failures = 0  # in a row, for this unit's backoff
        initial = max(spec.backoff_initial, 0.01)
        self._retry = Backoff(
            initial=initial, multiplier=1.6, jitter=0.2, maximum=max(spec.backoff_max, initial)
        )
        self.next_due = 0.0  # loop time of the next poll (the scheduler's)

    async def connect(self) -> None:
        """Open a connection of its own (the poller shares one per host:port instead)."""
        if self._conn is None:
            self._conn = await _open(self.spec)

    async def close(self) -> None:
        await self._drop_connection()

    async def poll_once(self) -> PollResult:
        """Run every planned read once; raises ``PollError`` when the device failed."""
        conn = self._conn
        if conn is None:
            raise PollError(ErrorKind.RESET, "not connected")
        if self._bad and time.monotonic() - self._bad_since > self.spec.retry_bad_after:
            self._set_plan(list(self._full_plan))
            self._bad = {}
        started = time.monotonic()
        timestamp = time.time()
        values: list[Value | None] = [None] * len(self.spec.points)
        errors: dict[int, str] = {}
        index, slots = self._index, self._slots
        for request in list(self._plan):
            try:
                data = await self._read(conn, request)
            except ModbusExceptionReply as exc:
                if exc.code in GATEWAY_ABSENT_CODES:
                    raise
                self.hooks.on_error(self.spec.name, exc.kind)
                if exc.code in REFUSED_POINT_CODES:
                    await self._isolate(conn, request, values, exc)
                else:
                    for point in request.points:
                        errors[index[id(point)]] = str(exc)
                continue
            for i, value in zip(slots[id(request)], request.decode(data), strict=True):
                values[i] = value
        for point, reason in self._bad.items():
            errors[index[id(point)]] = reason
        self.polls += 1
        return PollResult(
            self.spec.name,
            timestamp,
            self.spec.points,
            values,
            errors,
            time.monotonic() - started,
        )

    async def _read(self, conn: Link, request: ReadRequest) -> bytes:
        """The data bytes of one planned read (the core's guard refuses any non-read)."""
        reply, _ms = await conn.exchange(self.spec.unit, request.pdu, timeout=self.spec.timeout)
        if isinstance(reply, Failure):
            raise _failed(reply)
        code = reply.exception_code
        if code is not None:
            raise ModbusExceptionReply(code)
        return reply.pdu[2:]  # function, byte count: the sizes were checked against the request

    async def _isolate(
        self,
        conn: Link,
        failed: ReadRequest,
        values: list[Value | None],
        refusal: ModbusExceptionReply,
    ) -> None:
        """Split a refused read until the refused points are found; re-plan without them."""
        good: list[ReadRequest] = []
        pending = failed.split() if len(failed.points) > 1 else []
        if not pending:
            self._bad[failed.points[0]] = str(refusal)
        while pending:
            request = pending.pop(0)
            try:
                data = await self._read(conn, request)
            except ModbusExceptionReply as exc:
                if exc.code not in REFUSED_POINT_CODES:
                    raise
                if len(request.points) == 1:
                    self._bad[request.points[0]] = str(exc)
                else:
                    pending[:0] = request.split()
                continue
            good.append(request)
            for point, value in zip(request.points, request.decode(data), strict=True):
                values[self._index[id(point)]] = value
        position = self._plan.index(failed)
        self._set_plan(self._plan[:position] + good + self._plan[position + 1 :])
        self._bad_since = time.monotonic()
        self._set_status(True, "")

    def _set_plan(self, plan: list[ReadRequest]) -> None:
        self._plan = plan
        self._slots = {id(r): tuple(self._index[id(p)] for p in r.points) for r in plan}

    def _backoff(self, failures: int) -> float:
        # the project's one backoff (x1.6, +-20 %), from the unit's own settings
        return self._retry.delay(failures - 1)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _set_status(self, online: bool, reason: str) -> None:
        bad = tuple(sorted(p.name for p in self._bad))
        old = self.status
        if old.online == online and old.bad_points == bad and old.reason == reason:
            return
        since = old.since if old.online == online else time.time()
        self.status = DeviceStatus(self.spec.name, online, reason, since, bad)
        self.hooks.on_status(self.status)


_CONNECTION_KINDS = (
    ErrorKind.REFUSED,
    ErrorKind.CONNECT_TIMEOUT,
    ErrorKind.UNREACHABLE,
    ErrorKind.RESET,
    ErrorKind.MALFORMED,
)


class _ConnectionScheduler:
    """Polls the units behind one host:port over one connection, each at its interval.

    A Modbus/TCP gateway in front of serial devices, or a device with several unit ids,
    serves one request at a time and often few connections, so its units share one
    connection and take turns (earliest due first). A unit that fails (an exception
    0x0A/0x0B, a timeout) backs off alone; a connection that fails (refused, reset,
    not Modbus) is reopened with backoff, and each unit reports it when its turn comes.
    """

    def __init__(self, units: Sequence[DevicePoller]) -> None:
        self.units = list(units)
        # host, port and connect_timeout: the same for every unit (the Poller checks)
        self.spec = units[0].spec
        self.hooks = units[0].hooks
        self.connect_failures = 0
        self._timeouts = 0  # in a row on this connection, whatever the unit

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for unit in self.units:
            unit.next_due = loop.time()
        conn: Link | None = None
        try:
            while True:
                unit = min(self.units, key=lambda u: u.next_due)
                delay = unit.next_due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if conn is None:
                    conn = await self._open(loop.time())
                    if conn is None:
                        continue
                try:
                    result = await unit.poll_once()
                except Exception as exc:
                    if self._failed(unit, exc, loop.time()):
                        conn.close()
                        conn = None
                        self._share(None)
                    continue
                self._timeouts = 0
                unit.failures = 0
                unit._set_status(True, "")
                self.hooks.on_result(result)
                unit.next_due += unit.spec.interval
                now = loop.time()
                if unit.next_due < now:  # overran: skip the missed ticks rather than burst
                    self.hooks.on_overrun(unit.spec.name)
                    unit.next_due = now
        finally:
            self._share(None)
            if conn is not None:
                conn.close()

    async def _open(self, now: float) -> Link | None:
        try:
            conn = await _open(self.spec)
        except PollError as exc:
            self.connect_failures += 1
            for unit in self.units:  # each unit backs off by its own settings
                self.hooks.on_error(unit.spec.name, exc.kind)
                unit._set_status(False, f"{exc.kind}: {exc}")
                unit.next_due = max(unit.next_due, now + unit._backoff(self.connect_failures))
            return None
        self.connect_failures = 0
        self._timeouts = 0
        self._share(conn)
        return conn

    def _share(self, conn: Link | None) -> None:
        for unit in self.units:
            unit._conn = conn

    def _failed(self, unit: DevicePoller, exc: Exception, now: float) -> bool:
        """Back the unit off; True when the connection must be reopened."""
        if isinstance(exc, PollError):
            kind = exc.kind
            self.hooks.on_error(unit.spec.name, kind)
            unit._set_status(False, f"{kind}: {exc}")
        else:  # a bug must not end the polling of this connection
            log.exception("device %s: unexpected error", unit.spec.name)
            kind = ErrorKind.RESET
            unit._set_status(False, f"internal error: {type(exc).__name__}: {exc}")
        unit.failures += 1
        unit.next_due = now + unit._backoff(unit.failures)
        if kind is ErrorKind.TIMEOUT:
            # one unit timing out behind a gateway says nothing about the connection;
            # timeouts in a row (or the only unit timing out) may be a dead one: reopen
            self._timeouts += 1
            return len(self.units) == 1 or self._timeouts >= 2
        return kind in _CONNECTION_KINDS


class Poller:
    """Polls devices; ``async with Poller(specs, hooks):`` runs until the block ends.

    Devices with the same host and port (units behind one gateway) share one connection
    and one scheduler; every other device has its own, so a slow or dead device only
    ever delays the units that share its connection.
    """

    def __init__(self, specs: Sequence[DeviceSpec], hooks: PollerHooks | None = None) -> None:
        problems = shared_connection_problems(specs)
        if problems:
            raise UsageError(problems[0])
        self.hooks = hooks or PollerHooks()
        self.devices = {spec.name: DevicePoller(spec, self.hooks) for spec in specs}
        groups: dict[tuple[str, int], list[DevicePoller]] = {}
        for device in self.devices.values():
            groups.setdefault((device.spec.host, device.spec.port), []).append(device)
        self.connections = [_ConnectionScheduler(units) for units in groups.values()]
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Poller:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        for scheduler in self.connections:
            name = f"poll {scheduler.spec.host}:{scheduler.spec.port}"
            self._tasks.append(asyncio.create_task(scheduler.run(), name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def statuses(self) -> list[DeviceStatus]:
        return [device.status for device in self.devices.values()]
