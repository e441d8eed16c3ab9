"""A small HTTP/1.1 server over asyncio, with h11 doing the protocol.

Shared by the Ollama simulator and ``mcptool model serve``. Why not uvicorn/starlette:
they would be two more dependencies, and they hide what both servers must control
exactly: when headers leave (Ollama sends them with the first chunk, after a model
load), dropping a connection mid-body, and noticing at once that a client went away
(that is how Ollama aborts a generation).
h11 (already installed with httpx) keeps the HTTP/1.1 parsing and framing correct:
keep-alive, chunked bodies, ``Connection: close``, HTTP/1.0 peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate

import h11

MAX_BODY = 32 * 1024 * 1024
log = logging.getLogger(__name__)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class DropConnection(Exception):
    """Raised by a body stream to cut the TCP connection without finishing the body."""


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    # A streamed body: each item is written (and flushed) as one chunk.
    stream: AsyncIterator[bytes] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response | None]]
"""Returns a response, or None to close the connection without one."""


class _Connection(asyncio.Protocol):
    def __init__(self, handler: Handler, server: HTTPServer) -> None:
        self._handler = handler
        self._server = server
        self._registry = server._connections
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self.client_gone = False

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._registry.add(self)
        self._server.accepted += 1

    def data_received(self, data: bytes) -> None:
        self._h11.receive_data(data)
        self._next_request()

    def eof_received(self) -> bool:
        # HTTP/1.1 clients send nothing while they wait for an answer, so an EOF during a
        # request means the client left: stop working on it, as Ollama does.
        self.client_gone = True
        if self._task is not None:
            self._task.cancel()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.client_gone = True
        self._registry.discard(self)
        if self._task is not None:
            self._task.cancel()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- requests ----------------------------------------------------------------------
    def _next_request(self) -> None:
        if self._task is not None or self._transport is None:
            return  # pipelined data waits in h11's buffer until this answer is done
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._reject(exc.error_status_hint, str(exc))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request = event
                self._body.clear()
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > MAX_BODY:
                    self._reject(413, "request body too large")
                    return
            elif isinstance(event, h11.EndOfMessage):
                assert self._request is not None
                self._task = asyncio.get_running_loop().create_task(
                    self._serve(self._request, bytes(self._body))
                )
                return
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return

    def _reject(self, status: int, reason: str) -> None:
        with contextlib.suppress(h11.LocalProtocolError):
            body = json.dumps({"error": reason}).encode()
            self._write(
                h11.Response(
                    status_code=status,
                    headers=[
                        *self._server.identity,
                        ("content-type", "application/json; charset=utf-8"),
                        ("content-length", str(len(body))),
                        ("connection", "close"),
                    ],
                )
            )
            self._write(h11.Data(data=body))
            self._write(h11.EndOfMessage())
        self._close()

    async def _serve(self, event: h11.Request, body: bytes) -> None:
        target = event.target.decode("latin-1")
        path, _, query = target.partition("?")
        request = Request(
            method=event.method.decode("ascii"),
            path=path,
            query=query,
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers},
            body=body,
        )
        try:
            response = await self._handler(request)
            if response is None:
                self._abort()
                return
            await self._send(request, response)
        except DropConnection:
            self._abort()
            return
        except Exception:  # a server bug: say so to the client instead of hanging it
            log.exception("handler failed for %s %s", request.method, request.path)
            if self._h11.our_state is h11.SEND_RESPONSE:
                self._reject(500, "server error (see its log)")
            else:
                self._abort()
            return
        except asyncio.CancelledError:
            self._abort()
            if not self.client_gone:
                raise
            return
        finally:
            self._task = None
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            self._next_request()
        else:
            self._close()

    async def _send(self, request: Request, response: Response) -> None:
        headers = [
            *self._server.identity,
            ("content-type", response.content_type),
            ("date", formatdate(usegmt=True)),
            *response.headers,
        ]
        if response.stream is None:
            headers.append(("content-length", str(len(response.body))))
            self._write(h11.Response(status_code=response.status, headers=headers))
            if request.method != "HEAD" and response.body:
                self._write(h11.Data(data=response.body))
            self._write(h11.EndOfMessage())
            return
        # No content-length: h11 frames the body as chunked for HTTP/1.1 peers.
        started = False
        try:
            async for chunk in response.stream:
                if not started:
                    self._write(h11.Response(status_code=response.status, headers=headers))
                    started = True
                self._write(h11.Data(data=chunk))
                if self._paused:
                    await self._wait_drain()
        finally:
            closer = getattr(response.stream, "aclose", None)
            if closer is not None:
                await closer()
        if not started:
            self._write(h11.Response(status_code=response.status, headers=headers))
        self._write(h11.EndOfMessage())

    async def _wait_drain(self) -> None:
        self._drain = asyncio.get_running_loop().create_future()
        if self._paused:
            await self._drain
        self._drain = None

    def _write(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._abort()


class HTTPServer:
    """Serve ``handler`` on ``host:port`` (port 0: an ephemeral port, see ``.port``);
    ``server`` names the software in every response's ``Server`` header (none if empty)."""

    def __init__(
        self, handler: Handler, host: str = "127.0.0.1", port: int = 0, server: str = ""
    ) -> None:
        self._handler = handler
        self.host = host
        self.port = port
        self.identity = [("server", server)] if server else []
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self.accepted = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self._handler, self),
            self.host,
            self.port,
            reuse_address=True,
            backlog=1024,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._connections):
            connection.shutdown()
        await self._server.wait_closed()
        self._server = None
