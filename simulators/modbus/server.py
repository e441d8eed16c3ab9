"""The Modbus/TCP server: MBAP framing, pipelining, fault injection, many devices.

Why our own asyncio server and not pymodbus's ``ModbusTcpServer``: fault injection
needs control below the PDU (a reset at the socket, a reply in pieces, a corrupt MBAP
header, refusing connections) that its server loop does not expose; pipelined requests
must be answered in order with their own transaction ids even when one reply is
delayed; and its per-request PDU objects and datastore calls cost several times what a
slice of a ``bytearray`` does (bench/simulator.py measures both). It is an
``asyncio.Protocol`` rather than streams so that a request costs one callback, not a
task switch. The data model and PDU handling live in ``device``; the MBAP framing and
what each function code's request looks like are the Modbus core's (``mcptool.modbus``
``mbap`` and ``functions``), the same code the clients use.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from mcptool.errors import McptoolError
from mcptool.modbus import rtu
from mcptool.modbus.functions import FUNCTIONS, exception_pdu
from mcptool.modbus.mbap import HEADER, frame, split_requests
from simulators.modbus.device import DeviceState, UnitState
from simulators.modbus.faults import CONNECTION_KINDS, Fault, FaultError
from simulators.modbus.profile import DeviceProfile
from simulators.modbus.serial import SerialLine, SerialSettings
from simulators.modbus.values import Scalar

_LINGER_RST = struct.pack("ii", 1, 0)
BACKLOG = 128


class SimulatorError(McptoolError):
    """The simulator cannot start (port in use, bad host) or was used wrongly."""


@dataclass
class Counters:
    """What a device was asked: requests by (unit, function), connections, faults fired."""

    requests: Counter[tuple[int, int]] = field(default_factory=Counter)
    connections: int = 0  # accepted (refused ones are not counted here)
    active: int = 0  # open right now
    refused: int = 0
    malformed: int = 0  # frames that were not Modbus/TCP (the connection is dropped)
    faults: Counter[str] = field(default_factory=Counter)

    def total(self, unit: int | None = None, function: int | None = None) -> int:
        """Requests in total, or for one unit and/or function code."""
        return sum(
            n
            for (u, f), n in self.requests.items()
            if (unit is None or u == unit) and (function is None or f == function)
        )

    def merge(self, other: Counters) -> None:
        self.requests.update(other.requests)
        self.faults.update(other.faults)
        self.connections += other.connections
        self.active += other.active
        self.refused += other.refused
        self.malformed += other.malformed


class _Out:
    """One reply waiting its turn: replies leave in request order, whatever their delay."""

    __slots__ = ("data", "parts", "pause", "ready", "then")

    def __init__(self, data: bytes, ready: bool, parts: int, pause: float, then: str | None):
        self.data = data
        self.ready = ready
        self.parts = parts
        self.pause = pause
        self.then = then


def _split(data: bytes, parts: int) -> list[bytes]:
    parts = max(1, min(parts, len(data)))
    size, extra = divmod(len(data), parts)
    out, pos = [], 0
    for i in range(parts):
        n = size + (1 if i < extra else 0)
        out.append(data[pos : pos + n])
        pos += n
    return out


def _span(function: int, pdu: bytes) -> tuple[int, int]:
    """First and last address a request touches, or (-1, -1)."""
    entry = FUNCTIONS.get(function)
    return (-1, -1) if entry is None else entry.span(pdu)


def _byte_counted(function: int) -> bool:
    entry = FUNCTIONS.get(function)
    return entry is not None and entry.byte_counted


class _Connection(asyncio.Protocol):
    def __init__(self, listener: _Listener) -> None:
        self.listener = listener
        self.device = listener.device
        self.counters = listener.counters
        self.buf = bytearray()
        self.queue: deque[_Out] = deque()
        self.sending = False
        self.closed = False
        self.after_counts: dict[int, int] = {}
        self.transport: asyncio.Transport | None = None
        # RTU frames (over TCP here; a serial line feeds _request itself, see serial.py)
        self.rtu = listener.rtu
        self.requests = rtu.RequestDecoder(gap=None)

    # -- connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.listener.connections.add(self)
        self.counters.connections += 1
        self.counters.active += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.queue.clear()
        self.listener.connections.discard(self)
        self.counters.active -= 1
        self.listener.wake.set()

    def abort(self, reset: bool = False) -> None:
        transport = self.transport
        if transport is None or self.closed:
            return
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # SO_LINGER 0 turns close() into an RST, which is what a crashed device sends.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            transport.abort()
        else:
            transport.close()
        self.connection_lost(None)

    # -- requests --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.rtu:
            # No resync trouble to drop the connection for: noise is skipped.
            self.requests.feed(data, 0.0)
            for unit, pdu in self.requests.requests():
                self._request(0, unit, pdu)
                if self.closed:
                    return
            return
        buf = self.buf
        buf += data
        frames, used, broken = split_requests(buf)
        for tid, unit, pdu in frames:
            self._request(tid, unit, pdu)
            if self.closed:
                return
        if broken:
            # Not Modbus/TCP: devices drop such connections rather than guess at a resync.
            self.counters.malformed += 1
            self.abort()
            return
        if used:
            del buf[:used]

    def _request(self, tid: int, unit: int, pdu: bytes) -> None:
        self.counters.requests[(unit, pdu[0])] += 1
        faults = self.listener.request_faults
        if faults:
            self._faulty_request(tid, unit, pdu, faults)
            return
        reply = self.device.handle(unit, pdu)
        if reply is None:
            return
        out = rtu.frame(unit, reply) if self.rtu else frame(tid, unit, reply)
        if self.queue:
            self._emit(_Out(out, True, 1, 0.0, None))
        else:
            self.transport.write(out)  # type: ignore[union-attr]

    def _faulty_request(self, tid: int, unit: int, pdu: bytes, faults: list[Fault]) -> None:
        fc = pdu[0]
        first, last = _span(fc, pdu)
        # the device's clock only for a fault with a window (a test clock may count reads)
        now = self.device.now() if any(f.timed for f in faults) else 0.0
        delay = 0.0
        code: int | None = None
        silent = False
        then: str | None = None
        garbage: bytes | None = None
        fragment: Fault | None = None
        out_tid = tid
        corrupt: list[Fault] = []
        fired = self.counters.faults
        for f in faults:
            if not f.covers(unit, fc, first, last, now):
                continue
            if f.kind == "close_after":
                n = self.after_counts.get(id(f), 0) + 1
                self.after_counts[id(f)] = n
                if n == f.after and f.trigger():
                    fired["close_after"] += 1
                    then = then or "close"
                continue
            if not f.trigger():
                continue
            fired[f.kind] += 1
            kind = f.kind
            if kind == "latency":
                delay += f.delay()
            elif kind == "exception":
                code = f.code
            elif kind == "silence":
                silent = True
            elif kind == "reset":
                then = "reset"
            elif kind == "garbage":
                garbage = f.garbage()
            elif kind == "fragment":
                fragment = f
            elif kind == "wrong_tid":
                out_tid = f.value if f.value is not None else (tid + 1) & 0xFFFF
            elif kind == "corrupt":
                corrupt.append(f)
        reply = exception_pdu(fc, code) if code is not None else self.device.handle(unit, pdu)
        data = b""
        if then == "reset":
            pass  # a reset replaces the answer
        elif garbage is not None:
            data = garbage
        elif reply is not None and not silent:
            data = self._frame(out_tid, unit, reply, corrupt)
        if not data and then is None:
            return
        parts = fragment.pieces if fragment is not None else 1
        pause = fragment.pause if fragment is not None else 0.0
        out = _Out(data, delay <= 0, parts, pause, then)
        self._emit(out)
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._ready, out)

    def _frame(self, tid: int, unit: int, reply: bytes, corrupt: list[Fault]) -> bytes:
        pid, length = 0, len(reply) + 1
        for f in corrupt:
            if f.field == "protocol_id":
                pid = 1 if f.value is None else f.value
            elif f.field == "length":
                length = max(0, length - 1) if f.value is None else f.value
            elif f.field == "unit":
                unit = (unit + 1) & 0xFF if f.value is None else f.value
            elif f.field == "function":
                new = (reply[0] % 0x7F) + 1 if f.value is None else f.value
                reply = bytes((new,)) + reply[1:]
            elif f.field == "byte_count" and _byte_counted(reply[0]) and len(reply) >= 2:
                count = (reply[1] + 2) & 0xFF if f.value is None else f.value
                reply = reply[:1] + bytes((count,)) + reply[2:]
        if self.rtu:
            wire = rtu.frame(unit, reply)
            if any(f.field in ("protocol_id", "length") for f in corrupt):
                # RTU has neither field: its framing breaks at the CRC instead.
                wire = wire[:-1] + bytes((wire[-1] ^ 0xFF,))
            return wire
        # Deliberately broken framing: the header is packed here, not by ``mbap.frame``.
        return HEADER.pack(tid, pid, length, unit) + reply

    # -- replies in order --------------------------------------------------------------

    def _emit(self, out: _Out) -> None:
        if not self.queue and out.ready and out.parts == 1 and out.then is None:
            if out.data:
                self.transport.write(out.data)  # type: ignore[union-attr]
            return
        self.queue.append(out)
        self._flush()

    def _ready(self, out: _Out) -> None:
        out.ready = True
        self._flush()

    def _flush(self) -> None:
        queue = self.queue
        while queue and not self.sending and not self.closed:
            head = queue[0]
            if not head.ready:
                return
            if head.parts > 1 and len(head.data) > 1:
                self.sending = True
                self._send_pieces(head, _split(head.data, head.parts))
                return
            queue.popleft()
            if head.data:
                self.transport.write(head.data)  # type: ignore[union-attr]
            if head.then is not None:
                self.abort(reset=head.then == "reset")
                return

    def _send_pieces(self, head: _Out, pieces: list[bytes]) -> None:
        if self.closed:
            return
        self.transport.write(pieces[0])  # type: ignore[union-attr]
        if len(pieces) > 1:
            asyncio.get_running_loop().call_later(head.pause, self._send_pieces, head, pieces[1:])
            return
        self.sending = False
        self.queue.popleft()
        if head.then is not None:
            self.abort(reset=head.then == "reset")
            return
        self._flush()


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Listener:
    """One device on one port: its socket, connections, counters and accept loop."""

    def __init__(
        self,
        sim: ModbusSimulator,
        index: int,
        profile: DeviceProfile,
        host: str,
        port: int,
        clock: Callable[[], float],
    ) -> None:
        self.sim = sim
        self.index = index
        self.profile = profile
        self.host = host
        self.port = port
        self.rtu = sim.framing == "rtu"
        self.device = DeviceState(profile, clock)
        self.counters = Counters()
        self.connections: set[_Connection] = set()
        self.request_faults: list[Fault] = []
        self.connection_faults: list[Fault] = []
        self.wake = asyncio.Event()
        self.sock: socket.socket | None = None
        self.task: asyncio.Task[None] | None = None
        self._fd = -1

    @property
    def address(self) -> tuple[str, int]:
        assert self.sock is not None
        name = self.sock.getsockname()
        return name[0], name[1]

    def applies(self, fault: Fault) -> bool:
        d = fault.device
        return d is None or d == self.index or d == self.profile.name

    def update_faults(self, faults: Iterable[Fault]) -> None:
        mine = [f for f in faults if self.applies(f)]
        self.request_faults = [f for f in mine if f.kind not in CONNECTION_KINDS]
        self.connection_faults = [f for f in mine if f.kind in CONNECTION_KINDS]
        self.wake.set()

    def open(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            self.sock = socket.create_server((self.host, self.port), family=family, backlog=BACKLOG)
        except OSError as exc:
            raise SimulatorError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc} "
                "(pick another --port, or 0 for any free one)"
            ) from None
        self.sock.setblocking(False)
        self._fd = self.sock.fileno()
        self.task = asyncio.get_running_loop().create_task(self._accept_loop())

    def _over_limit(self) -> Fault | None:
        if not self.connection_faults:
            return None  # no clock read: a test clock may count its readings
        now = self.device.now()
        for f in self.connection_faults:
            if f.active(now) and len(self.connections) >= f.limit:
                return f
        return None

    def _next_edge(self) -> float | None:
        """Seconds until a connection fault's window opens or closes (the accept loop
        must look again then: a backlog may have to start or end with nobody connecting)."""
        if not self.connection_faults:
            return None
        now = self.device.now()
        edges = [e for f in self.connection_faults if (e := f.next_edge(now)) is not None]
        return min(edges, default=None)

    async def _accept_loop(self) -> None:
        try:
            await self._accept_forever()
        finally:
            self._drop_reader()

    def _drop_reader(self) -> None:
        # Synchronous, so the reader is gone before the socket closes: a registration
        # left on a closed fd stays in the selector's map, and the next socket given
        # that fd number (another listener) is never polled.
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)

    async def _accept_forever(self) -> None:
        # accept() ourselves when the socket is readable, rather than a cancellable
        # loop.sock_accept(): cancelling that Task after its future got a connection
        # drops the socket, and cancelling it earlier leaves its reader registered for
        # a loop turn. Here an accepted socket is always handed on or closed.
        loop = asyncio.get_running_loop()
        assert self.sock is not None
        while True:
            f = self._over_limit()
            if f is not None and f.mode == "backlog":
                # Stop accepting: the kernel's queue fills and further connects time out.
                if f.trigger():
                    self.counters.faults["refuse"] += 1
                self.sock.listen(0)
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self._next_edge())
                self.sock.listen(BACKLOG)
                continue
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                await self._readable_or_woken(loop)
                continue
            except OSError:
                continue  # the peer gave up before we accepted (ECONNABORTED and kin)
            sock.setblocking(False)
            await self._admit(sock, check=True)

    async def _readable_or_woken(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for a connection, or for a connection closing, faults changing or a fault's
        window opening or closing (each may lift or impose a connection limit)."""
        readable = loop.create_future()
        loop.add_reader(self._fd, _set_done, readable)
        waking = asyncio.ensure_future(self.wake.wait())
        try:
            await asyncio.wait(
                {readable, waking}, timeout=self._next_edge(), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waking.cancel()
            self._drop_reader()
        self.wake.clear()

    async def _admit(self, sock: socket.socket, check: bool) -> None:
        f = self._over_limit() if check else None
        if f is not None and f.mode != "backlog" and f.trigger():
            self.counters.refused += 1
            self.counters.faults["refuse"] += 1
            if f.mode == "reset":
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            sock.close()
            return
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: _Connection(self), sock
            )
        except OSError:
            sock.close()
        except asyncio.CancelledError:
            sock.close()  # stopped while handing it over: nobody else will close it
            raise

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.sock is not None:
            self._drop_reader()  # also when close() itself was cancelled before the task ended
            self._fd = -1
            self.sock.close()
        for conn in list(self.connections):
            conn.abort()


class ModbusSimulator:
    """Simulated Modbus/TCP devices in this process, one listener per profile.

    ``port=0`` gives each device an ephemeral port; another port gives device *i* the
    port ``port + i``. Use as ``async with ModbusSimulator([profile]) as sim`` or with
    :meth:`start` / :meth:`stop`. Faults can be added and cleared while it runs; the
    ``clock`` (seconds, monotonic) drives the value generators, so tests can inject one.
    """

    def __init__(
        self,
        profiles: DeviceProfile | Sequence[DeviceProfile],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        faults: Iterable[Fault] = (),
        clock: Callable[[], float] = time.monotonic,
        framing: str = "tcp",
        serial: SerialSettings | str | None = None,
    ) -> None:
        """``framing="rtu"`` frames requests and replies as RTU over TCP; ``serial`` puts
        every device on one serial line instead of TCP ports (a port's settings, or
        ``"pty"`` for a pseudo-terminal it creates: see ``serial_path``)."""
        if framing not in ("tcp", "rtu"):
            raise SimulatorError(f"framing {framing!r}: use tcp (Modbus/TCP) or rtu")
        self.framing = "rtu" if serial is not None else framing
        self.serial = serial
        self._line: SerialLine | None = None
        if isinstance(profiles, DeviceProfile):
            profiles = [profiles]
        if not profiles:
            raise SimulatorError("no device profile given")
        if not 0 <= port <= 65535 or (port and port + len(profiles) - 1 > 65535):
            raise SimulatorError(f"port: must be 0..65535, got {port}")
        self.profiles = list(profiles)
        self.host = host
        self.port = port
        self.clock = clock
        self._faults: list[Fault] = []
        for f in faults:
            if not isinstance(f, Fault):
                raise FaultError(f"expected a Fault, got {f!r}")
            self._check_device(f)
            self._faults.append(f)
        self._listeners: list[_Listener] = []

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> ModbusSimulator:
        if self._listeners:
            return self
        try:
            for i, profile in enumerate(self.profiles):
                port = self.port + i if self.port else 0
                listener = _Listener(self, i, profile, self.host, port, self.clock)
                listener.update_faults(self._faults)
                self._listeners.append(listener)
                if self.serial is None:
                    listener.open()
            if self.serial is not None:
                self._line = await SerialLine.open(
                    self.serial, [(listener, _Connection(listener)) for listener in self._listeners]
                )
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        if self._line is not None:
            self._line.close()
            self._line = None
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            await listener.close()

    async def __aenter__(self) -> ModbusSimulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Run until cancelled (the CLI's Ctrl-C)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # -- where --------------------------------------------------------------------------

    def _running(self) -> list[_Listener]:
        if not self._listeners:
            raise SimulatorError("the simulator is not running: await sim.start() first")
        return self._listeners

    @property
    def serial_path(self) -> str:
        """The serial port (or the pseudo-terminal created) that the devices answer on."""
        self._running()
        if self._line is None:
            raise SimulatorError("the simulator is not on a serial line: see addresses")
        return self._line.path

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the first device."""
        return self._running()[0].address

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every device, in profile order."""
        return [listener.address for listener in self._running()]

    # -- faults -------------------------------------------------------------------------

    @property
    def faults(self) -> list[Fault]:
        return list(self._faults)

    def add_fault(self, fault: Fault) -> Fault:
        """Start injecting ``fault`` (on running connections too); returns it."""
        if not isinstance(fault, Fault):
            raise FaultError(f"expected a Fault, got {fault!r}")
        self._check_device(fault)
        self._faults.append(fault)
        self._refresh_faults()
        return fault

    def _check_device(self, fault: Fault) -> None:
        d = fault.device
        names = [p.name for p in self.profiles]
        if d is None or d in names or (isinstance(d, int) and 0 <= d < len(names)):
            return
        raise FaultError(
            f"device: no device {d!r} (devices: {', '.join(names)}, or 0..{len(names) - 1})"
        )

    def remove_fault(self, fault: Fault) -> None:
        self._faults = [f for f in self._faults if f is not fault]
        self._refresh_faults()

    def clear_faults(self) -> None:
        self._faults = []
        self._refresh_faults()

    def _refresh_faults(self) -> None:
        for listener in self._listeners:
            listener.update_faults(self._faults)

    # -- counters and values ------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        """A snapshot of what all devices were asked (see :meth:`device_counters`)."""
        total = Counters()
        for listener in self._listeners:
            total.merge(listener.counters)
        return total

    def device_counters(self, device: int | str = 0) -> Counters:
        """The live counters of one device (by index or profile name)."""
        return self._listener(device).counters

    def reset_counters(self) -> None:
        for listener in self._listeners:
            active = listener.counters.active
            listener.counters = Counters(active=active)
            for conn in listener.connections:
                conn.counters = listener.counters

    def _listener(self, device: int | str) -> _Listener:
        for listener in self._running():
            if device in (listener.index, listener.profile.name):
                return listener
        raise SimulatorError(f"no device {device!r}")

    def device(self, device: int | str = 0) -> DeviceState:
        return self._listener(device).device

    def unit(self, unit: int | None = None, device: int | str = 0) -> UnitState:
        """One unit's state (for reading what a master wrote, or pinning values)."""
        state = self.device(device)
        if unit is None:
            return next(iter(state.units.values()))
        found = state.units.get(unit)
        if found is None:
            raise SimulatorError(f"device {device!r} has no unit {unit}")
        return found

    def value(self, name: str, unit: int | None = None, device: int | str = 0) -> Scalar:
        return self.unit(unit, device).value(name)

    def set_value(
        self, name: str, value: Scalar, unit: int | None = None, device: int | str = 0
    ) -> None:
        self.unit(unit, device).set_value(name, value)
