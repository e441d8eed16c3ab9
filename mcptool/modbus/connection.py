"""One Modbus/TCP connection driven by asyncio, with every failure told apart.

Our own asyncio protocol rather than pymodbus's client: ``AsyncModbusTcpClient.connect()``
returns False for refused, reset and timed-out connects alike, the client keeps one
request in flight behind a lock, and it silently drops replies whose protocol id is not
0, so a non-Modbus peer looks like a timeout. A probe must report each of those apart
and cost little more than the kernel's own TCP work (pymodbus's client takes about 1.7x
the CPU per probe; its ``connect()`` no longer sleeps 0.1 s as of 3.16, see
docs/PROBE.md). The PDUs come from the function entries (``functions``) and pass the
read-only guard (``pdu.check_read_only_pdu``) in ``exchange``; the bytes around them are
the framing's: ``mbap`` (Modbus/TCP) or ``rtu`` (RTU over TCP, as serial-to-Ethernet
converters pass it), chosen per connection through ``framing``. Probe, scan,
identification and the gateway's poller all use this class.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import socket
import time
from typing import Any, Final

from mcptool.modbus.framing import Framing, FramingName, make_framing
from mcptool.modbus.mbap import Answer, Malformed, MalformedField
from mcptool.modbus.outcome import (
    RESET_ERRNOS,
    Cause,
    Failure,
    Outcome,
    classify_connect_error,
)
from mcptool.modbus.pdu import check_read_only_pdu

__all__ = ["Failure", "ModbusConnection", "Outcome", "classify_connect_error"]


def _partial(buffer: bytes, then: Failure) -> Failure:
    # Bytes came, then the peer stopped: it answered, just not with a whole frame.
    if not buffer:
        return then
    return Failure(
        Cause.MALFORMED,
        f"incomplete reply: {len(buffer)} bytes ({bytes(buffer[:12]).hex(' ')}), "
        f"then {then.outcome.value}",
        MalformedField.LENGTH,
    )


_CLOSED: Final = Failure(Cause.CLOSED, "the peer closed the connection without a reply")
_RESET: Final = Failure(Cause.RESET, "the peer reset the connection without a reply")
_TIMEOUT: Final = Failure(Cause.TIMEOUT, "connected, no reply before the deadline")


class ModbusConnection:
    """An open Modbus/TCP connection that runs one exchange at a time.

    Driven by readiness callbacks on the raw socket, with one future and one timer per
    phase, rather than by a transport or ``asyncio.timeout`` around ``sock_recv``:
    measured on loopback at 64 probes in flight, a transport costs about a third of the
    probe rate and each ``asyncio.timeout`` about 10 %, and a probe is mostly
    connection set-up. Replies to requests that timed out are recognised by their
    transaction id and skipped, so one connection can serve a whole unit-id sweep,
    silent units included.
    """

    __slots__ = ("_ended", "_framing", "_loop", "_sock", "_waiter", "connect_ms")

    #: The guard every request passes before a byte goes out. Here the read-only one, for
    #: probe, scan, identification and the poller; only ``write.WriteConnection`` (the
    #: explicit write path, which none of them imports) puts its own in its place.
    guard = staticmethod(check_read_only_pdu)

    def __init__(
        self, sock: socket.socket, connect_ms: float, framing: Framing | None = None
    ) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._framing = framing if framing is not None else make_framing(FramingName.TCP)
        self._ended: Failure | None = None
        self._waiter: asyncio.Future[Answer | Failure] | None = None
        self.connect_ms = connect_ms

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        connect_timeout: float,
        framing: FramingName | str = FramingName.TCP,
    ) -> ModbusConnection | Failure:
        """Connect within ``connect_timeout`` seconds, or say why not.

        ``framing`` is how requests and replies are framed on the connection: Modbus/TCP
        (MBAP) or RTU frames (RTU over TCP; TCP gives no silences to rely on).

        A host name is resolved first (its first address is used); ``socket.gaierror``
        propagates for a name that does not resolve.
        """
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        family = _literal_family(host)
        address: tuple[Any, ...] = (host, port)
        if family is None:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            error = sock.connect_ex(address)
            if error in _IN_PROGRESS:
                error = await _connected(loop, sock, connect_timeout)
        except BaseException:
            sock.close()
            raise
        if error:
            sock.close()
            exc = TimeoutError() if error < 0 else OSError(error, os.strerror(error))
            return classify_connect_error(exc)
        return cls(sock, (time.perf_counter() - started) * 1000.0, make_framing(framing))

    @property
    def usable(self) -> bool:
        """Whether another exchange can go over this connection (the peer has not left)."""
        if self._ended is not None or self._sock.fileno() < 0:
            return False
        try:
            pending = self._sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as exc:
            self._lost(exc)
            return False
        if not pending:
            self._ended = _CLOSED
            return False
        return True

    async def exchange(
        self, unit: int, pdu: bytes, *, timeout: float
    ) -> tuple[Answer | Failure, float]:
        """Send one request PDU to ``unit``; return the checked reply and the response ms.

        Only complete, well-formed reads, 0x2B/0x0E and 0x11 can be sent: anything else
        raises ``ReadOnlyError`` before a byte goes out (see ``pdu.check_read_only_pdu``).
        """
        entry = self.guard(pdu)
        started = time.perf_counter()
        result = await self._exchange(self._framing.request(unit, pdu, entry), timeout)
        return result, (time.perf_counter() - started) * 1000.0

    async def _exchange(self, request: bytes, timeout: float) -> Answer | Failure:
        if self._ended is not None:
            return self._ended
        loop, sock = self._loop, self._sock
        try:
            sent = sock.send(request)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            return self._lost(exc)
        if sent < len(request):  # a full send buffer: never for one request on a fresh socket
            try:
                async with asyncio.timeout(timeout):
                    await loop.sock_sendall(sock, request[sent:])
            except TimeoutError:
                self._ended = _TIMEOUT
                return _TIMEOUT
            except OSError as exc:
                return self._lost(exc)
        # Bytes already in hand (a read that took more than the last reply) go first.
        verdict = self._framing.feed(b"", 0.0)
        if verdict is not None:
            return self._verdict(verdict)
        waiter = self._waiter = loop.create_future()
        fd = sock.fileno()
        loop.add_reader(fd, self._on_readable)
        deadline = loop.call_later(timeout, self._on_deadline)
        try:
            return await waiter
        finally:
            deadline.cancel()
            loop.remove_reader(fd)
            self._waiter = None

    def _on_readable(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            data = self._sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            waiter.set_result(self._lost(exc))
            return
        if not data:
            self._ended = _CLOSED
            waiter.set_result(_partial(self._framing.timed_out()[0], _CLOSED))
            return
        verdict = self._framing.feed(data, 0.0)
        if verdict is not None:
            waiter.set_result(self._verdict(verdict))

    def _verdict(self, verdict: Answer | Malformed) -> Answer | Failure:
        if isinstance(verdict, Malformed):
            # The stream cannot be trusted past a bad frame.
            self._ended = Failure(Cause.MALFORMED, verdict.reason, verdict.field)
            return self._ended
        return verdict

    def _on_deadline(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        partial, heard = self._framing.timed_out()
        failure = _partial(partial, _TIMEOUT)
        if failure is not _TIMEOUT:
            self._ended = failure
        elif heard:
            failure = Failure(Cause.TIMEOUT, f"{_TIMEOUT.reason}; heard {heard}")
        waiter.set_result(failure)

    def _lost(self, exc: OSError) -> Failure:
        self._ended = _RESET if exc.errno in RESET_ERRNOS else _closed_by(exc)
        return _partial(self._framing.timed_out()[0], self._ended)

    def close(self) -> None:
        self._ended = self._ended or _CLOSED
        self._sock.close()


_IN_PROGRESS: Final = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN})


async def _connected(loop: asyncio.AbstractEventLoop, sock: socket.socket, timeout: float) -> int:
    """Wait for a non-blocking connect: its errno, 0 when connected, -1 at the deadline."""
    waiter: asyncio.Future[int] = loop.create_future()

    def done(result: int) -> None:
        if not waiter.done():
            waiter.set_result(result)

    fd = sock.fileno()
    loop.add_writer(fd, done, 0)
    deadline = loop.call_later(timeout, done, -1)
    try:
        if await waiter < 0:
            return -1
    finally:
        deadline.cancel()
        loop.remove_writer(fd)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


def _closed_by(exc: OSError) -> Failure:
    return Failure(Cause.CLOSED, f"connection lost: {exc.strerror or exc}")


@functools.lru_cache(maxsize=4096)
def _literal_family(host: str) -> socket.AddressFamily | None:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None
