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

Why a small Modbus/TCP client of our own rather than pymodbus's ``AsyncModbusTcpClient``:
the poller needs the reply's raw register bytes (it decodes 100 values with one struct
call), exact error kinds (pymodbus folds refused, reset and timeout into one ``False``
from ``connect()`` and retries each request up to four times), and no fixed sleeps; the
only protocol needed is the 12-byte read request and its reply, checked field by field.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from mcptool.errors import McptoolError
from mcptool.modbus.registermap import (
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    Point,
    ReadRequest,
    Value,
    plan_reads,
)

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
]

EXCEPTION_NAMES = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}
_REFUSED_POINT = (0x02, 0x03)
_ABSENT_DEVICE = (0x0A, 0x0B)


class ErrorKind(StrEnum):
    REFUSED = "refused"
    CONNECT_TIMEOUT = "connect_timeout"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    RESET = "reset"
    MALFORMED = "malformed"
    EXCEPTION = "exception"
    ILLEGAL_ADDRESS = "illegal_address"


class PollError(McptoolError):
    """A device failed as a whole (it goes offline); ``kind`` says how."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ModbusExceptionReply(PollError):
    """The device answered a read with a Modbus exception code."""

    def __init__(self, code: int) -> None:
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        kind = ErrorKind.ILLEGAL_ADDRESS if code in _REFUSED_POINT else ErrorKind.EXCEPTION
        super().__init__(kind, f"exception 0x{code:02X} {name}")
        self.code = code


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """What to poll on one device connection and how."""

    name: str
    host: str
    points: tuple[Point, ...]
    port: int = 502
    unit: int = 1
    interval: float = 1.0
    timeout: float = 1.0
    connect_timeout: float = 3.0
    max_gap: int = 10
    max_registers: int = MAX_READ_REGISTERS
    max_bits: int = MAX_READ_BITS
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    retry_bad_after: float = 300.0

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


class _Connection:
    """One Modbus/TCP connection; one request in flight (devices seldom pipeline well)."""

    _HEADER = struct.Struct(">HHHB")
    _REQUEST = struct.Struct(">HHHBBHH")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._tid = 0

    @classmethod
    async def open(cls, host: str, port: int, timeout: float) -> _Connection:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise PollError(
                ErrorKind.CONNECT_TIMEOUT, f"connect timeout after {timeout}s"
            ) from None
        except ConnectionRefusedError:
            raise PollError(ErrorKind.REFUSED, "connection refused") from None
        except OSError as exc:
            raise PollError(
                ErrorKind.UNREACHABLE, f"cannot connect: {exc.strerror or exc}"
            ) from None
        return cls(reader, writer)

    async def read(self, unit: int, request: ReadRequest, timeout: float) -> bytes:
        self._tid = (self._tid + 1) & 0xFFFF
        tid = self._tid
        self._writer.write(
            self._REQUEST.pack(tid, 0, 6, unit, request.function, request.address, request.count)
        )
        try:
            async with asyncio.timeout(timeout):
                while True:
                    reply_tid, pdu = await self._frame(unit)
                    if reply_tid == tid:  # an older tid is a late reply to a timed-out read
                        break
        except TimeoutError:
            raise PollError(ErrorKind.TIMEOUT, f"no reply within {timeout}s") from None
        except asyncio.IncompleteReadError:
            raise PollError(ErrorKind.RESET, "connection closed by the device") from None
        except OSError as exc:
            raise PollError(ErrorKind.RESET, f"connection lost: {exc.strerror or exc}") from None
        return self._data(request, pdu)

    async def _frame(self, unit: int) -> tuple[int, bytes]:
        tid, protocol, length, reply_unit = self._HEADER.unpack(await self._reader.readexactly(7))
        if protocol != 0 or not 2 <= length <= 254:
            raise PollError(ErrorKind.MALFORMED, f"not Modbus/TCP (protocol {protocol})")
        pdu = await self._reader.readexactly(length - 1)
        if reply_unit != unit:
            raise PollError(ErrorKind.MALFORMED, f"reply from unit {reply_unit}, asked {unit}")
        return tid, pdu

    @staticmethod
    def _data(request: ReadRequest, pdu: bytes) -> bytes:
        function = pdu[0]
        if function == request.function | 0x80 and len(pdu) == 2:
            raise ModbusExceptionReply(pdu[1])
        expected = (request.count + 7) // 8 if request.table.is_bits else request.count * 2
        if function != request.function or len(pdu) != expected + 2 or pdu[1] != expected:
            raise PollError(ErrorKind.MALFORMED, f"bad reply to function {request.function}")
        return pdu[2:]

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await self._writer.wait_closed()


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
        self._conn: _Connection | None = None
        self.status = DeviceStatus(spec.name, False, "not polled yet", time.time())
        self.polls = 0
        self.failures = 0  # in a row, for this unit's backoff
        self.next_due = 0.0  # loop time of the next poll (the scheduler's)

    async def connect(self) -> None:
        """Open a connection of its own (the poller shares one per host:port instead)."""
        if self._conn is None:
            self._conn = await _Connection.open(
                self.spec.host, self.spec.port, self.spec.connect_timeout
            )

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
                data = await conn.read(self.spec.unit, request, self.spec.timeout)
            except ModbusExceptionReply as exc:
                if exc.code in _ABSENT_DEVICE:
                    raise
                self.hooks.on_error(self.spec.name, exc.kind)
                if exc.code in _REFUSED_POINT:
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

    async def _isolate(
        self,
        conn: _Connection,
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
                data = await conn.read(self.spec.unit, request, self.spec.timeout)
            except ModbusExceptionReply as exc:
                if exc.code not in _REFUSED_POINT:
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
        # exponential with +-20 % jitter (gRPC connection backoff), from the poll interval
        base = max(self.spec.backoff_initial, 0.01) * 1.6 ** (failures - 1)
        return min(self.spec.backoff_max, base) * random.uniform(0.8, 1.2)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

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
        self.spec = units[0].spec
        self.hooks = units[0].hooks
        self.connect_failures = 0
        self._timeouts = 0  # in a row on this connection, whatever the unit

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for unit in self.units:
            unit.next_due = loop.time()
        conn: _Connection | None = None
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
                        await conn.close()
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
                await conn.close()

    async def _open(self, now: float) -> _Connection | None:
        spec = self.spec
        try:
            conn = await _Connection.open(spec.host, spec.port, spec.connect_timeout)
        except PollError as exc:
            self.connect_failures += 1
            delay = self.units[0]._backoff(self.connect_failures)
            for unit in self.units:
                self.hooks.on_error(unit.spec.name, exc.kind)
                unit._set_status(False, f"{exc.kind}: {exc}")
                unit.next_due = max(unit.next_due, now + delay)
            return None
        self.connect_failures = 0
        self._timeouts = 0
        self._share(conn)
        return conn

    def _share(self, conn: _Connection | None) -> None:
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
