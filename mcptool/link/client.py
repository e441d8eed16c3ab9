"""The edge node's link: an asyncio driver around :class:`ClientConnection`.

::

    async with LinkClient("mcp://127.0.0.1:7878", "node-1", key) as link:
        await link.send(b"reading")            # returns once the hub acknowledged it
        ack = await link.submit(b"next")       # waits only for outbox room (backpressure)
        reply = await link.request("status", {"verbose": True})

The link reconnects by itself (with backoff) and re-sends unacknowledged DATA, so a
frame handed to ``send``/``submit`` is delivered exactly once, in order, unless the link
is closed or fails for good (a wrong key): then the waiting calls raise.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mcptool.backoff import Backoff
from mcptool.frame import MAX_LENGTH_DEFAULT, ResponseEnvelope
from mcptool.link.client_state import ClientConnection, ClientState
from mcptool.link.delivery import OutboxFull
from mcptool.link.errors import LinkClosed, LinkError
from mcptool.link.events import (
    Acknowledged,
    CloseTransport,
    ConnectRequested,
    EventReceived,
    LinkFailed,
    PeerErrorReceived,
    PongReceived,
    RequestFailed,
    ResponseReceived,
    SessionEstablished,
    StateChanged,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 7878
DEFAULT_TLS_PORT = 7879


@dataclass(frozen=True)
class LinkURL:
    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mcps' if self.tls else 'mcp'}://{host}:{self.port}"


def parse_url(url: str) -> LinkURL:
    """``mcp://HOST[:PORT]`` (plain TCP, port 7878) or ``mcps://HOST[:PORT]`` (TLS, 7879)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mcp", "mcps"):
        raise LinkError(f"URL {url!r} must start with mcp:// or mcps://")
    try:
        port = parts.port
    except ValueError:
        raise LinkError(f"URL {url!r} has a bad port: use 1..65535") from None
    if not parts.hostname:
        raise LinkError(f"URL {url!r} names no host: use e.g. mcp://127.0.0.1:7878")
    if parts.path not in ("", "/") or parts.query:
        raise LinkError(f"URL {url!r} has a path or query: MCP URLs are just host and port")
    tls = parts.scheme == "mcps"
    return LinkURL(parts.hostname, port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT), tls)


class _Protocol(asyncio.Protocol):
    def __init__(self, client: LinkClient) -> None:
        self.client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.client._made(self, transport)

    def data_received(self, data: bytes) -> None:
        self.client._data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._gone(self, exc)


class LinkClient:
    """One edge node's authenticated, self-healing link to a hub."""

    def __init__(
        self,
        url: str | Sequence[str],
        node_id: str,
        key: bytes,
        *,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        reconnect: bool = True,
        handshake_timeout: float = 10.0,
        stable_after: float = 10.0,
        backoff: Backoff | None = None,
        outbox_capacity: int = 4096,
        max_frame: int = MAX_LENGTH_DEFAULT,
        on_state_change: Callable[[StateChanged], None] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_acked: Callable[[int], None] | None = None,
    ) -> None:
        # Several hubs: each new connection attempt after the first goes to the next URL
        # of the list, so a node whose hub died is at another hub after one backoff.
        self.urls = tuple(parse_url(each) for each in ([url] if isinstance(url, str) else url))
        if not self.urls:
            raise LinkError("no hub URL given: pass at least one mcp:// URL")
        if len({each.tls for each in self.urls}) > 1:
            raise LinkError("hub URLs mix mcp:// and mcps://: use one scheme for all of them")
        self._url_index = 0
        self._attempts = 0
        if self.url.tls and ssl is None:
            ssl = ssl_module.create_default_context()
        elif not self.url.tls and ssl is not None:
            raise LinkError(f"a TLS context was given for {self.url}: use mcps:// for TLS")
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.machine = ClientConnection(
            node_id,
            key,
            handshake_timeout=handshake_timeout,
            stable_after=stable_after,
            reconnect=reconnect,
            backoff=backoff,
            outbox_capacity=outbox_capacity,
            max_frame=max_frame,
        )
        self.on_state_change = on_state_change
        self.on_event = on_event
        self.on_acked = on_acked
        self.session: SessionEstablished | None = None
        self.failure: LinkError | None = None
        self.last_reason = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._protocol: _Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._flush_scheduled = False
        self._acks: collections.deque[tuple[int, asyncio.Future[int]]] = collections.deque()
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._pings: dict[int, asyncio.Future[float]] = {}
        self._up = asyncio.Event()
        self._space = asyncio.Event()
        self._changed = asyncio.Event()

    # ---------------------------------------------------------------- public API

    @property
    def url(self) -> LinkURL:
        """The hub this link is connected to, or tries next."""
        return self.urls[self._url_index]

    @property
    def state(self) -> ClientState:
        return self.machine.state

    @property
    def node_id(self) -> str:
        return self.machine.node_id

    @property
    def pending(self) -> int:
        """Frames handed to the link and not yet acknowledged."""
        return len(self.machine.outbox)

    async def start(self, timeout: float | None = None, *, wait: bool = True) -> None:
        """Connect and wait until the first session is up (or fail, or time out).

        ``wait=False`` returns at once: frames and requests queue until the link is up
        (what a gateway wants when its hub may be down at boot).
        """
        self._loop = asyncio.get_running_loop()
        if self.machine.state is ClientState.IDLE:
            self.machine.connect(self._loop.time())
            self._process()
        if not wait:
            return
        try:
            await asyncio.wait_for(self.wait_established(), timeout)
        except TimeoutError:
            reason = self.last_reason or "no answer"
            await self.close()
            raise LinkError(
                f"could not establish a link to {self.url} within {timeout:g} s ({reason})"
            ) from None
        except LinkError:
            await self.close()
            raise

    async def wait_established(self) -> None:
        """Wait until a session is up; raise if the link failed for good or was closed."""
        while True:
            self._raise_if_done()
            if self.machine.state is ClientState.ESTABLISHED and self.session is not None:
                return
            self._changed.clear()
            await self._changed.wait()

    async def send(self, body: bytes) -> int:
        """Deliver one DATA frame and wait for the hub's acknowledgement; its msg_id."""
        return await (await self.submit(body))

    async def submit(self, body: bytes) -> asyncio.Future[int]:
        """Queue one DATA frame, waiting only while the outbox is full; a future for its ACK."""
        loop = self._require_loop()
        machine = self.machine
        while True:
            self._raise_if_done()
            try:
                msg_id = machine.send_data(body, loop.time())
                break
            except OutboxFull:
                self._space.clear()
                await self._space.wait()
        future: asyncio.Future[int] = loop.create_future()
        self._acks.append((msg_id, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def send_nowait(self, body: bytes) -> int:
        """Queue one DATA frame without waiting; its msg_id (see ``on_acked``).

        Raises :class:`~mcptool.link.OutboxFull` when the outbox is full. For callers that
        track delivery themselves (a spool): ``on_acked(msg_id)`` reports that every frame
        up to and including ``msg_id`` was acknowledged.
        """
        loop = self._require_loop()
        self._raise_if_done()
        msg_id = self.machine.send_data(body, loop.time())
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return msg_id

    async def drain(self) -> None:
        """Wait until everything handed to the link so far is acknowledged."""
        while len(self.machine.outbox):
            self._raise_if_done()
            self._space.clear()
            await self._space.wait()

    async def request(
        self, action: str, data: Any = None, *, timeout: float = 10.0, service: str = "mcptool"
    ) -> ResponseEnvelope:
        """Send a REQUEST and wait for its RESPONSE (raises RequestTimeout, ConnectionLost)."""
        loop = self._require_loop()
        self._raise_if_done()
        trace_id = self.machine.send_request(
            action, data, loop.time(), timeout=timeout, service=service
        )
        future: asyncio.Future[ResponseEnvelope] = loop.create_future()
        self._waiting[trace_id] = future
        self._process()
        return await future

    async def ping(self, timeout: float = 5.0) -> float:
        """Round-trip time of one PING, in seconds (the session must be up)."""
        loop = self._require_loop()
        token = self.machine.ping(loop.time())
        future: asyncio.Future[float] = loop.create_future()
        self._pings[token] = future
        self._process()
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pings.pop(token, None)

    def send_event(self, body: dict[str, Any]) -> None:
        self.machine.send_event(body)
        self._process()

    async def close(self) -> None:
        """Close the link (orderly when a session is up); waiting calls raise LinkClosed."""
        if self._loop is None:
            self.machine.close(0.0)
            return
        self.machine.close(self._loop.time())
        self._process()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed(), self.machine.close_timeout + 1)
        self._teardown()

    async def __aenter__(self) -> LinkClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---------------------------------------------------------------- transport callbacks

    def _made(self, protocol: _Protocol, transport: asyncio.Transport) -> None:
        loop = self._require_loop()
        if protocol is not self._protocol or self.machine.state is not ClientState.CONNECTING:
            transport.abort()  # a connection the machine gave up on while it was opening
            return
        self._transport = transport
        self.machine.connection_made(loop.time())
        self._process()

    def _data(self, protocol: _Protocol, data: bytes) -> None:
        if protocol is self._protocol:
            self.machine.receive_data(data, self._require_loop().time())
            self._process()

    def _gone(self, protocol: _Protocol, exc: Exception | None) -> None:
        if protocol is not self._protocol:
            return
        self._protocol = None
        self._transport = None
        reason = f"connection lost: {exc}" if exc else "connection closed by the hub"
        self.machine.connection_lost(self._require_loop().time(), reason)
        self._process()

    async def _open(self, attempt: int) -> None:
        loop = self._require_loop()
        if self._attempts:
            self._url_index = (self._url_index + 1) % len(self.urls)
        self._attempts += 1
        protocol = _Protocol(self)
        self._protocol = protocol
        try:
            await loop.create_connection(
                lambda: protocol,
                self.url.host,
                self.url.port,
                ssl=self.ssl,
                server_hostname=self.server_hostname
                if self.server_hostname is not None or self.ssl is None
                else self.url.host,
            )
        except asyncio.CancelledError:
            raise
        except (OSError, ssl_module.SSLError, ValueError) as exc:
            if protocol is self._protocol and self.machine.state is ClientState.CONNECTING:
                self._protocol = None
                self.machine.connection_failed(loop.time(), _describe(exc))
                self._process()

    # ---------------------------------------------------------------- event pump

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._process()

    def _process(self) -> None:
        machine = self.machine
        out = machine.data_to_send()
        if out and self._transport is not None:
            self._transport.write(out)
        for event in machine.events():
            match event:
                case Acknowledged(msg_id=upto):
                    if self.on_acked is not None:
                        _call(self.on_acked, upto)
                    acks = self._acks
                    while acks and acks[0][0] <= upto:
                        msg_id, future = acks.popleft()
                        if not future.done():
                            future.set_result(msg_id)
                    self._space.set()
                case StateChanged(new=new, reason=reason):
                    self.last_reason = reason
                    if new is not ClientState.ESTABLISHED:
                        self.session = None
                    if new is ClientState.CLOSED:
                        self._fail_all(self.failure or LinkClosed(f"link closed: {reason}"))
                    self._changed.set()
                    if self.on_state_change is not None:
                        _call(self.on_state_change, event)
                case SessionEstablished():
                    self.session = event
                    self._changed.set()
                case ConnectRequested(attempt=attempt):
                    self._connect_task = asyncio.ensure_future(self._open(attempt))
                case CloseTransport():
                    self._drop_transport()
                case ResponseReceived(trace_id=trace_id, response=response):
                    future = self._waiting.pop(trace_id, None)
                    if future is not None and not future.done():
                        future.set_result(response)
                case RequestFailed(trace_id=trace_id, error=error):
                    waiting = self._waiting.pop(trace_id, None)
                    if waiting is not None and not waiting.done():
                        waiting.set_exception(error)
                case PongReceived(token=token, rtt=rtt):
                    pong = self._pings.pop(token, None)
                    if pong is not None and not pong.done():
                        pong.set_result(rtt)
                case LinkFailed(error=error):
                    self.failure = error
                    self._changed.set()
                case EventReceived(body=body):
                    if self.on_event is not None:
                        _call(self.on_event, body)
                case PeerErrorReceived():
                    self.last_reason = f"hub reported error {event.code}: {event.message}"
        self._reschedule()

    def _reschedule(self) -> None:
        loop = self._require_loop()
        deadline = self.machine.next_deadline()
        if deadline is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.machine.tick(self._require_loop().time())
        self._process()

    # ---------------------------------------------------------------- helpers

    def _drop_transport(self) -> None:
        transport, self._transport = self._transport, None
        self._protocol = None
        if transport is not None:
            transport.close()
        task, self._connect_task = self._connect_task, None
        if task is not None and not task.done():
            task.cancel()

    def _teardown(self) -> None:
        self._drop_transport()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._fail_all(self.failure or LinkClosed("the link was closed"))

    async def _closed(self) -> None:
        while self.machine.state is not ClientState.CLOSED:
            self._changed.clear()
            await self._changed.wait()

    def _fail_all(self, error: LinkError) -> None:
        while self._acks:
            _, future = self._acks.popleft()
            if not future.done():
                future.set_exception(error)
        for waiting in (self._waiting, self._pings):
            for future in waiting.values():  # type: ignore[attr-defined]
                if not future.done():
                    future.set_exception(error)
            waiting.clear()  # type: ignore[attr-defined]
        self._space.set()

    def _raise_if_done(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self.machine.state in (ClientState.CLOSING, ClientState.CLOSED):
            raise LinkClosed(f"link to {self.url} closed: {self.last_reason}")

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise LinkError("the link is not started: use `async with LinkClient(...)`")
        return self._loop


def _call(callback: Callable[[Any], object], argument: Any) -> None:
    """Run an application callback; its bug must not break the link's bookkeeping."""
    try:
        callback(argument)
    except Exception:
        log.exception("link callback %r failed", callback)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
