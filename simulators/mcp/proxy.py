"""A TCP proxy that can go silent or cut connections: how a dead link looks from each end.

``stall()`` stops forwarding in both directions while keeping every socket open, which is
what a 4G link that lost coverage, or a NAT box that forgot the mapping, looks like: no
FIN, no RST, just silence. Only heartbeats can notice that.
"""

from __future__ import annotations

import asyncio
import contextlib


class _Pipe(asyncio.Protocol):
    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.held: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.proxy.stalled:
            self.proxy.swallowed += len(data)
            return
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.held.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy._pipes.discard(self)
        if self.peer is not None and self.peer.transport is not None and not self.proxy.stalled:
            self.peer.transport.close()


class FaultProxy:
    """Forward ``listen -> target``; ``stall()``, ``resume()`` and ``cut()`` on demand."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.stalled = False
        self.swallowed = 0
        self._pipes: set[_Pipe] = set()
        self._tasks: set[asyncio.Future[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "start() the proxy first"
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"mcp://{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.get_running_loop().create_server(self._accept, self.host, 0)

    def _accept(self) -> _Pipe:
        inbound = _Pipe(self)
        self._pipes.add(inbound)
        task = asyncio.ensure_future(self._connect(inbound))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return inbound

    async def _connect(self, inbound: _Pipe) -> None:
        loop = asyncio.get_running_loop()
        outbound = _Pipe(self)
        try:
            await loop.create_connection(lambda: outbound, *self.target)
        except OSError:
            if inbound.transport is not None:
                inbound.transport.abort()
            return
        self._pipes.add(outbound)
        inbound.peer, outbound.peer = outbound, inbound
        assert outbound.transport is not None
        for chunk in inbound.held:
            outbound.transport.write(chunk)
        inbound.held.clear()

    def stall(self) -> None:
        """Stop forwarding anything, keep every connection open."""
        self.stalled = True

    def resume(self) -> None:
        self.stalled = False

    def cut(self) -> None:
        """Reset every connection through the proxy."""
        for pipe in list(self._pipes):
            if pipe.transport is not None:
                pipe.transport.abort()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
