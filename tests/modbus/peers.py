"""Tiny real TCP peers for probe and scan tests, each on 127.0.0.1 and an ephemeral port.

They send exact bytes (well formed or deliberately broken), so a test can pin how one
reply is classified; the simulators and pyModbusTCP cover whole devices.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress

from pyModbusTCP.server import DataBank, DeviceIdentification, ModbusServer

Reply = Callable[[bytes], bytes | None]


def normal_reply(request: bytes, registers: tuple[int, ...] = (1234,)) -> bytes:
    """What a healthy device sends back for a read of holding/input registers."""
    tid, _, _, unit, function = struct.unpack(">HHHBB", request[:8])
    data = b"".join(struct.pack(">H", r) for r in registers)
    return struct.pack(">HHHBBB", tid, 0, len(data) + 3, unit, function, len(data)) + data


def exception_reply(request: bytes, code: int) -> bytes:
    tid, _, _, unit, function = struct.unpack(">HHHBB", request[:8])
    return struct.pack(">HHHBBB", tid, 0, 3, unit, function | 0x80, code)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(7)
    (length,) = struct.unpack(">H", header[4:6])
    return header + await reader.readexactly(length - 1)


@asynccontextmanager
async def raw_server(
    reply: Reply | None = None,
    *,
    then: str = "keep",
    host: str = "127.0.0.1",
) -> AsyncIterator[int]:
    """A server that answers each request frame with ``reply(request)`` (None: stays silent).

    ``then`` says what follows each reply: ``keep`` the connection, ``close`` it (FIN)
    or ``reset`` it (RST, via SO_LINGER 0).
    """
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            while True:
                request = await _read_frame(reader)
                answer = reply(request) if reply is not None else None
                if answer:
                    writer.write(answer)
                    await writer.drain()
                if then == "close":
                    writer.close()
                    return
                if then == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()


@contextmanager
def refusing_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port that is bound but does not listen: a connect to it is refused."""
    sock = socket.socket()
    sock.bind((host, 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextmanager
def unreachable_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A listener that never accepts, its backlog already full: further SYNs are dropped.

    That is what a connect to a host that is down or firewalled looks like (the connect
    times out), made honestly on loopback without netns or iptables.
    """
    listener = socket.socket()
    listener.bind((host, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.socket()
    filler.settimeout(2)
    filler.connect((host, port))  # completes into the accept queue, which is now full
    try:
        yield port
    finally:
        filler.close()
        listener.close()


@contextmanager
def pymodbustcp_server(
    registers: dict[int, list[int]] | None = None,
    identification: DeviceIdentification | None = None,
) -> Iterator[int]:
    """pyModbusTCP's server (an independent Modbus stack), answering every unit id."""
    bank = DataBank()
    for address, values in (registers or {}).items():
        bank.set_holding_registers(address, values)
    server = ModbusServer("127.0.0.1", 0, no_block=True, data_bank=bank, device_id=identification)
    server.start()
    try:
        yield server._service.server_address[1]
    finally:
        server.stop()


@contextmanager
def banner_service(banner: bytes = b"SSH-2.0-OpenSSH_9.2\r\n") -> Iterator[int]:
    """A non-Modbus TCP service that greets every client, as SSH and SMTP servers do."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(banner)
                conn.settimeout(2)
                with suppress(OSError):
                    conn.recv(1024)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


class Tally:
    """Connections a server saw: how many in all, and the most open at once."""

    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self.turned_away = 0  # connections closed on arrival: no slot free


@asynccontextmanager
async def tallying_server(
    reply: Reply | None = None,
    host: str = "127.0.0.1",
    tally: Tally | None = None,
    *,
    slots: int | None = None,
) -> AsyncIterator[tuple[int, Tally]]:
    """``raw_server`` that counts connections (several servers may share one ``tally``).

    With ``slots``, a connection beyond that many open at once is closed on arrival, as
    many devices do when their connection table is full.
    """
    tally = tally or Tally()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if slots is not None and tally.open >= slots:
            tally.turned_away += 1
            writer.close()
            return
        tally.accepted += 1
        tally.open += 1
        tally.max_open = max(tally.max_open, tally.open)
        try:
            while True:
                request = await _read_frame(reader)
                answer = reply(request) if reply is not None else None
                if answer:
                    writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            tally.open -= 1
            writer.close()

    server = await asyncio.start_server(handle, host, 0)
    try:
        yield server.sockets[0].getsockname()[1], tally
    finally:
        server.close()


class Wire:
    """Every byte a ``recording_server`` received, in order, across its connections."""

    def __init__(self) -> None:
        self.received = bytearray()


@asynccontextmanager
async def recording_server(host: str = "127.0.0.1") -> AsyncIterator[tuple[int, Wire]]:
    """A device that keeps every byte it is sent (not only whole frames) and answers each
    complete MBAP frame with ``normal_reply``: what reached the wire, byte for byte."""
    wire = Wire()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        pending = bytearray()
        while data := await reader.read(4096):
            wire.received += data
            pending += data
            while len(pending) >= 6 and len(pending) >= 6 + (pending[4] << 8 | pending[5]):
                size = 6 + (pending[4] << 8 | pending[5])
                writer.write(normal_reply(bytes(pending[:size])))
                del pending[:size]
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    try:
        yield server.sockets[0].getsockname()[1], wire
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
