"""The hub: an asyncio server that puts :class:`ServerConnection` machines on sockets.

One ``asyncio.Protocol`` per connection (no stream reader/writer layer: at tens of
thousands of frames a second the callbacks are what is cheapest), one lazily moved timer
per connection, and limits that make an unauthenticated peer cheap to refuse: a cap on
connections and on handshakes in progress, a small frame limit and a deadline before
authentication, and reading paused while a peer does not read what we write.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcptool.frame import MAX_LENGTH_DEFAULT, SUPPORTED_VERSIONS, Reject
from mcptool.link.admission import Admission, RefusalLog, address_key
from mcptool.link.codes import CloseCode, RejectCode
from mcptool.link.delivery import Ledger, MemoryLedger
from mcptool.link.events import (
    CloseTransport,
    DataReceived,
    EventReceived,
    HandshakeFailed,
    PeerErrorReceived,
    RequestReceived,
    SessionEstablished,
    StateChanged,
)
from mcptool.link.router import Handler, Router
from mcptool.link.server_state import ServerConnection, ServerState

log = logging.getLogger(__name__)

OnData = Callable[[str, int, bytes], None]
OnEvent = Callable[[str, dict[str, Any]], None]
OnSession = Callable[[str, bool, str], None]
# Store frames somewhere durable and shared (e.g. a replicated stream) before the ACK.
Commit = Callable[[str, Sequence[tuple[int, bytes]]], Awaitable[None]]
# Where a node resumes, asked of that shared store before its session is accepted.
ResumePoint = Callable[[str], Awaitable[int]]


@dataclass
class ServerStats:
    connections_accepted: int = 0
    refused_busy: int = 0
    handshakes_failed: int = 0
    sessions: int = 0
    frames_delivered: int = 0


class _Connection(asyncio.Protocol):
    __slots__ = (
        "address",
        "closed",
        "conn",
        "held_close",
        "holding",
        "linger",
        "lingers",
        "loop",
        "server",
        "timer",
        "timer_at",
        "transport",
    )

    def __init__(self, server: LinkServer) -> None:
        self.server = server
        self.loop = server.loop
        self.address = "unknown"
        self.linger: asyncio.TimerHandle | None = None
        self.lingers = False
        self.transport: asyncio.Transport | None = None
        self.conn: ServerConnection | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.closed = False
        self.holding = False  # a commit or a resume look-up is under way: write nothing
        self.held_close: str | None = None

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        server = self.server
        server._transports += 1
        if server._stopping:
            # accepted before stop() closed the listening socket, made after it
            self.closed = True
            transport.abort()
            return
        self.address = address_key(transport.get_extra_info("peername"))
        # Every socket counts, those turned away and still lingering included.
        if server._transports > server.max_connections:
            server.stats.refused_busy += 1
            transport.write(Reject(RejectCode.BUSY, "hub busy, try later").encode())
            transport.close()
            self.closed = True
            server._refused(self.address, "busy", f"{server.max_connections} connections open")
            return
        # The machine first: should it fail, no slot has been taken yet.
        self.conn = server._new_connection(self.loop.time())
        server._connections.add(self)
        server.stats.connections_accepted += 1
        evicted = server.admission.admit(self, self.address, self.loop.time())
        if evicted is not None:
            assert isinstance(evicted, _Connection)
            evicted.refuse_busy(f"turned away for a newer connection from {self.address}")
        self._reschedule()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None or self.closed:
            return
        try:
            conn.receive_data(data, self.loop.time())
        except Exception:
            # A bug in the core, never the peer's doing (a peer's bad bytes are protocol
            # errors). What the core queued is still delivered below, as its ledger counted
            # it; the rest of the read goes unacknowledged, and the node sends it again.
            log.exception("connection from %s failed", self.transport.get_extra_info("peername"))
            self.closed = True
            self._process()
            self.abort()
            return
        self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.linger is not None:
            self.linger.cancel()
            self.linger = None
        self.server._transports -= 1
        self.server._lingering.discard(self)
        self.server._connections.discard(self)
        conn = self.conn
        if conn is None:
            return
        self.closed = True
        conn.connection_lost(self.loop.time(), str(exc) if exc else "connection closed")
        self._process()

    def pause_writing(self) -> None:
        # The peer does not read: stop reading from it too, so it cannot make us buffer.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- driving the machine

    def close(self, code: CloseCode, reason: str) -> None:
        if self.conn is not None and not self.closed:
            self.conn.close(code, reason)
            self._process()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def refuse_busy(self, reason: str) -> None:
        """Turn away a stranger for a newer one: its slot at once, REJECT(busy) and the close
        ``busy_linger`` seconds later.

        A flooder that reconnects the moment it hears from the hub would otherwise make
        every newcomer cost one more connection at once, as fast as the loop can accept
        them. Until the linger ends its socket is not read and holds no slot and no state
        machine, and it hears nothing: the churn is bounded by the flooder's own sockets.
        """
        conn, transport = self.conn, self.transport
        if conn is None or transport is None or self.closed:
            return
        self.server.stats.refused_busy += 1
        self.lingers = True
        conn.refuse_busy(reason)
        self._process()  # the refusal is counted and the slot freed; the bytes wait
        self.closed = True
        transport.pause_reading()
        self.linger = self.loop.call_later(self.server.busy_linger, self.end_linger)
        self.server._lingering.add(self)

    def end_linger(self) -> None:
        if self.linger is not None:
            self.linger.cancel()
            self.linger = None
        self.server._lingering.discard(self)
        if self.transport is not None and not self.transport.is_closing():
            out = self.conn.data_to_send() if self.conn is not None else b""
            if out:
                self.transport.write(out)
            self.transport.close()

    def _process(self) -> None:
        conn = self.conn
        assert conn is not None and self.transport is not None
        server = self.server
        close_reason = None
        delivered = False
        failed = False
        committing: list[tuple[int, bytes]] = []
        for event in conn.events():
            match event:
                case DataReceived(seq=seq, body=body):
                    if failed:
                        continue  # behind a failed delivery: the ledger was set back
                    if not self._deliver(seq, body):
                        failed = True  # the rest of this read is not delivered either
                        continue
                    delivered = True
                    if server.commit is not None:
                        committing.append((seq, body))
                case RequestReceived(payload=payload):
                    server._spawn(self._answer(payload))
                case CloseTransport(reason=reason):
                    close_reason = reason
                case StateChanged():
                    self._state_changed(event)
                case SessionEstablished():
                    server._session_up(self, event)
                case HandshakeFailed(reason=reason, kind=kind):
                    server.stats.handshakes_failed += 1
                    server._refused(self.address, kind, reason)
                case EventReceived(body=body):
                    if server.on_event is not None:
                        try:
                            server.on_event(conn.node_id or "", body)
                        except Exception:
                            log.exception("on_event failed for node %s", conn.node_id)
                case PeerErrorReceived(code=code, message=message):
                    log.warning("node %s reports error %s: %s", conn.node_id, code, message)
        if failed:
            if committing:  # delivered before the failure, never stored: not counted
                server.ledger.advance(conn.node_id or "", committing[0][0] - 1)
            return
        if self.lingers:
            self._reschedule()
            return  # turned away: REJECT and close wait for the linger (refuse_busy)
        if delivered and server.before_ack is not None:
            server.before_ack()  # e.g. flush a journal: nothing is acknowledged unrecorded
        if committing:
            self._hold(server._spawn_commit(self, committing))
        if self.holding:
            # The ACK is in the machine's output; it goes out when the commit is done.
            if close_reason is not None:
                self.held_close = close_reason
            self._reschedule()
            return
        out = conn.data_to_send()
        if out and not self.closed:
            self.transport.write(out)
        if close_reason is not None and not self.closed:
            self.closed = True
            self.transport.close()
        self._reschedule()

    def _hold(self, task: asyncio.Future[bool]) -> None:
        """Write nothing and read nothing until ``task`` (a commit or a resume look-up)
        is done; then, if it succeeded, write what the machine queued meanwhile."""
        self.holding = True
        if self.transport is not None:
            self.transport.pause_reading()
        task.add_done_callback(self._release)

    def _release(self, task: asyncio.Future[bool]) -> None:
        self.holding = False
        ok = not task.cancelled() and task.exception() is None and task.result()
        if self.closed or self.conn is None or self.transport is None:
            return
        if not ok:
            self.closed = True
            self.abort()
            return
        out = self.conn.data_to_send()
        if out:
            self.transport.write(out)
        if self.held_close is not None:
            self.closed = True
            self.transport.close()
            return
        self.transport.resume_reading()
        self._reschedule()

    def _deliver(self, seq: int, body: bytes) -> bool:
        """Hand one frame to the application; on failure, drop the connection unacknowledged.

        The ledger is set back to just before the failed frame, so the node sends it (and
        everything after it) again on its next session: an application error means a
        retry, never a silent loss.
        """
        server = self.server
        conn = self.conn
        assert conn is not None and conn.node_id is not None
        if server.on_data is not None:
            try:
                server.on_data(conn.node_id, seq, body)
            except Exception:
                log.exception(
                    "on_data failed for node %s seq %d: dropping the connection"
                    " unacknowledged, the node will send it again",
                    conn.node_id,
                    seq,
                )
                server.ledger.advance(conn.node_id, seq - 1)
                self.closed = True
                self.abort()
                return False
        server.stats.frames_delivered += 1
        return True

    def _state_changed(self, event: StateChanged) -> None:
        server = self.server
        if event.old is ServerState.AWAIT_HELLO and event.new is ServerState.CHALLENGED:
            node_id = self.conn.node_id if self.conn is not None else None
            if node_id is not None:
                server.admission.hello(self, node_id, node_id in server.keys)
                if server.resume_point is not None and node_id in server.keys:
                    # AUTH is not read before the ledger holds the shared store's count
                    # for this node: its resume point, sent right after ACCEPT.
                    self._hold(server._spawn_resume(node_id))
        elif event.old in (ServerState.AWAIT_HELLO, ServerState.CHALLENGED):
            server.admission.finished(self)  # to ESTABLISHED or CLOSED
        if event.new is ServerState.CLOSED:
            server._connections.discard(self)
            if event.old is ServerState.ESTABLISHED:
                server._session_down(self, event.reason)

    async def _answer(self, payload: bytes) -> None:
        response = await self.server.router.dispatch(payload)
        if len(response) > self.server.max_frame:
            response = self.server.router.too_large(payload, len(response), self.server.max_frame)
        conn = self.conn
        if conn is not None and not self.closed and conn.send_response(response):
            self._process()

    def _reschedule(self) -> None:
        conn = self.conn
        deadline = None if conn is None or self.closed else conn.next_deadline()
        if deadline is None:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            return
        # Deadlines mostly move later (each frame received pushes the heartbeat on): a
        # timer that fires early just ticks and re-arms, which is cheaper than moving it.
        if self.timer is None or deadline < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = deadline
            self.timer = self.loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self.timer = None
        conn = self.conn
        if conn is None or self.closed:
            return
        conn.tick(self.loop.time())
        self._process()


class LinkServer:
    """An MCP hub on ``host:port`` (port 0: any free port; read :attr:`address`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        keys: Mapping[str, bytes] | None = None,
        *,
        on_data: OnData | None = None,
        handlers: Mapping[str, Handler] | Router | None = None,
        on_event: OnEvent | None = None,
        on_session: OnSession | None = None,
        before_ack: Callable[[], None] | None = None,
        commit: Commit | None = None,
        resume_point: ResumePoint | None = None,
        ledger: Ledger | None = None,
        ssl: ssl_module.SSLContext | None = None,
        heartbeat_interval: float = 10.0,
        dead_after: int = 3,
        window: int = 256,
        handshake_timeout: float = 5.0,
        hello_timeout: float = 2.0,
        max_connections: int = 10_000,
        max_handshakes: int = 256,
        reserved_handshakes: int = 64,
        max_handshakes_per_address: int = 16,
        busy_linger: float = 1.0,
        refusal_log_interval: float = 60.0,
        max_frame: int = MAX_LENGTH_DEFAULT,
        versions: Collection[int] = SUPPORTED_VERSIONS,
        backlog: int = 1024,
    ) -> None:
        if not keys:
            raise ValueError("a hub needs at least one node key")
        self.host = host
        self.port = port
        self.keys = keys
        self.on_data = on_data
        self.on_event = on_event
        self.on_session = on_session
        self.before_ack = before_ack
        self.commit = commit
        self.resume_point = resume_point
        self._commits: dict[str, asyncio.Future[bool]] = {}
        self.router = handlers if isinstance(handlers, Router) else Router(handlers)
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self.ssl = ssl
        self.heartbeat_interval = heartbeat_interval
        self.dead_after = dead_after
        self.window = window
        self.handshake_timeout = handshake_timeout
        self.hello_timeout = hello_timeout
        self.max_connections = max_connections
        self.max_handshakes = max_handshakes
        # Grace: a connect and its HELLO are one read apart, a few loop turns under load.
        self.admission = Admission(
            max_handshakes,
            reserved_handshakes,
            max_handshakes_per_address,
            grace=min(0.5, hello_timeout / 2),
        )
        self.busy_linger = busy_linger
        self.refusals = RefusalLog(refusal_log_interval)
        self._refusal_timer: asyncio.TimerHandle | None = None
        self.max_frame = max_frame
        self.versions = versions
        self.backlog = backlog
        self.stats = ServerStats()
        self.sessions: dict[str, _Connection] = {}
        self._connections: set[_Connection] = set()
        self._lingering: set[_Connection] = set()
        self._transports = 0  # made and not yet lost: what stop() waits for
        self._stopping = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "start() the server first"
        return self._loop

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the hub listens on, with the real port when 0 was asked for."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the hub is not listening: call start() first")
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        scheme = "mcps" if self.ssl is not None else "mcp"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    @property
    def connections(self) -> int:
        return len(self._connections)

    @property
    def sockets(self) -> int:
        """Sockets open now: handshakes, sessions, and strangers turned away but lingering."""
        return self._transports

    @property
    def lingering(self) -> int:
        """Strangers turned away whose REJECT and close wait for ``busy_linger``."""
        return len(self._lingering)

    @property
    def handshaking(self) -> int:
        """Connections in the handshake now (strangers and known nodes)."""
        return len(self.admission)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._server = await self._loop.create_server(
            lambda: _Connection(self),
            self.host,
            self.port,
            ssl=self.ssl,
            backlog=self.backlog,
            ssl_handshake_timeout=self.handshake_timeout if self.ssl is not None else None,
        )

    async def stop(self, *, abort: bool = False) -> None:
        """Stop listening and end every connection: with CLOSE, or (``abort``) as a crash would."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._lingering):
            connection.end_linger()
        for connection in list(self._connections):
            if abort:
                connection.abort()
            else:
                connection.close(CloseCode.GOING_AWAY, "hub shutting down")
        if self._refusal_timer is not None:
            self._refusal_timer.cancel()
            self._refusal_timer = None
        if self._loop is not None:
            for line in self.refusals.flush(self._loop.time()):
                log.warning("%s", line)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
                # Python 3.11's wait_closed returns before the connections it accepted
                # last are even made: wait until every transport has been let go.
                await asyncio.wait_for(self._drained(), 2.0)
            self._server = None

    async def _drained(self) -> None:
        quiet = 0
        while quiet < 3:  # a connection accepted last is made a few iterations later
            quiet = quiet + 1 if self._transports == 0 else 0
            await asyncio.sleep(0 if quiet else 0.01)

    async def __aenter__(self) -> LinkServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- used by connections

    def _new_connection(self, now: float) -> ServerConnection:
        return ServerConnection(
            self.keys,
            now,
            ledger=self.ledger,
            versions=self.versions,
            heartbeat_interval=self.heartbeat_interval,
            dead_after=self.dead_after,
            window=self.window,
            handshake_timeout=self.handshake_timeout,
            hello_timeout=self.hello_timeout,
            max_frame=self.max_frame,
        )

    def _refused(self, address: str, kind: str, reason: str) -> None:
        line = self.refusals.refused(address, kind, reason, self.loop.time())
        if line is not None:
            log.warning("%s", line)
        if self._refusal_timer is None:
            deadline = self.refusals.next_deadline()
            if deadline is not None:
                self._refusal_timer = self.loop.call_at(deadline, self._tell_refusals)

    def _tell_refusals(self) -> None:
        self._refusal_timer = None
        for line in self.refusals.due(self.loop.time()):
            log.warning("%s", line)
        deadline = self.refusals.next_deadline()
        if deadline is not None:
            self._refusal_timer = self.loop.call_at(deadline, self._tell_refusals)

    def _spawn_commit(
        self, connection: _Connection, frames: list[tuple[int, bytes]]
    ) -> asyncio.Future[bool]:
        """Commit ``frames`` of the connection's node; on failure set its ledger back to
        just before them (the node sends them again) and the connection is dropped."""
        assert self.commit is not None and connection.conn is not None
        node_id = connection.conn.node_id
        assert node_id is not None
        commit = self.commit
        before = self._commits.get(node_id)

        async def run() -> bool:
            if before is not None:
                await asyncio.wait([before])  # a node's frames are stored in order
            try:
                await commit(node_id, frames)
            except Exception as exc:
                log.warning(
                    "node %s: frames %d..%d not stored (%s): dropping the connection"
                    " unacknowledged, the node will send them again",
                    node_id, frames[0][0], frames[-1][0], exc,
                )  # fmt: skip
                if self.ledger.last(node_id) >= frames[0][0]:
                    self.ledger.advance(node_id, frames[0][0] - 1)
                return False
            return True

        task = asyncio.ensure_future(run())
        self._commits[node_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda done: self._commit_done(node_id, done))
        return task

    def _commit_done(self, node_id: str, task: asyncio.Future[bool]) -> None:
        if self._commits.get(node_id) is task:
            del self._commits[node_id]

    def _spawn_resume(self, node_id: str) -> asyncio.Future[bool]:
        assert self.resume_point is not None
        resume_point = self.resume_point
        before = self._commits.get(node_id)

        async def run() -> bool:
            if before is not None:
                # An older session of this node is still storing: its outcome is part
                # of the count.
                await asyncio.wait([before])
            try:
                last = await resume_point(node_id)
            except Exception as exc:
                log.warning("node %s: no resume point (%s): refusing it for now", node_id, exc)
                return False
            self.ledger.advance(node_id, last)
            return True

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _session_up(self, connection: _Connection, event: SessionEstablished) -> None:
        self.stats.sessions += 1
        old = self.sessions.get(event.node_id)
        self.sessions[event.node_id] = connection
        if old is not None and old is not connection:
            # Like an MQTT session takeover: the newest connection of a node wins, and the
            # old one (often half-dead after a network change) is closed.
            old.close(CloseCode.REPLACED, "replaced by a newer session of this node")
        log.info("node %s up (session %s)", event.node_id, event.session_id.hex()[:8])
        self._notify(event.node_id, True, f"resuming after seq {event.resume_seq}")

    def _session_down(self, connection: _Connection, reason: str) -> None:
        assert connection.conn is not None
        node_id = connection.conn.node_id
        if node_id is None:
            return
        if self.sessions.get(node_id) is connection:
            del self.sessions[node_id]
        log.info("node %s down: %s", node_id, reason)
        self._notify(node_id, False, reason)

    def _notify(self, node_id: str, up: bool, reason: str) -> None:
        if self.on_session is not None:
            try:
                result = self.on_session(node_id, up, reason)
            except Exception:
                log.exception("on_session failed for node %s", node_id)
                return
            if inspect.isawaitable(result):
                self._spawn(result)
