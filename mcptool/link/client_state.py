"""The client (edge node) end of an MCP link as a sans-IO state machine.

Bytes and the current time go in (``receive_data``, ``tick``, ...); events
(:meth:`events`), bytes to write (:meth:`data_to_send`) and the next moment it needs a
``tick`` (:meth:`next_deadline`) come out. No socket, no clock, no asyncio: that is what
lets tests drive every timer with a fake clock. Operations the current state does not
allow raise :class:`LinkStateError`; a misbehaving *peer* is not an exception but a
protocol error that drops the connection.

::

    IDLE -> CONNECTING -> HANDSHAKING -> AUTHENTICATING -> ESTABLISHED -> CLOSING -> CLOSED
                 ^              |               |               |
                 +---------- BACKOFF <----------+---------------+   (lost, timed out, dead)
"""

from __future__ import annotations

import enum
import heapq
import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcptool.backoff import Backoff
from mcptool.frame import (
    MAGIC,
    MAX_LENGTH_DEFAULT,
    VERSION,
    Accept,
    Auth,
    Challenge,
    Close,
    EnvelopeError,
    ErrorMessage,
    Event,
    Frame,
    FrameDecoder,
    FrameError,
    Hello,
    MessageType,
    Ping,
    Pong,
    Reject,
    RequestEnvelope,
    encode_frame,
    parse_response,
)
from mcptool.frame.envelope import read_trace_id
from mcptool.link import auth
from mcptool.link.codes import CloseCode, ErrorCode, RejectCode
from mcptool.link.delivery import Outbox
from mcptool.link.errors import (
    AuthenticationFailed,
    ConnectionLost,
    LinkClosed,
    LinkError,
    LinkStateError,
    RequestTimeout,
    VersionMismatch,
)
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
from mcptool.link.events import Event as LinkEvent
from mcptool.link.heartbeat import Heartbeat

# The ACK payload layout (one u64), read here without building an Ack per frame.
_U64 = struct.Struct(">Q")
# A whole DATA frame's head: the 5-byte frame header, then the u64 seq; the body follows.
# Building it with one pack is ten times cheaper than Data(...).encode(), which matters at
# 100k+ frames/s; tests/link/test_client_state.py proves the bytes are identical.
DATA_HEAD = struct.Struct(">BBHBQ")
_DATA_TYPE = int(MessageType.DATA)


class ClientState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    HANDSHAKING = "handshaking"
    AUTHENTICATING = "authenticating"
    ESTABLISHED = "established"
    CLOSING = "closing"
    CLOSED = "closed"
    BACKOFF = "backoff"


S = ClientState
CLIENT_TRANSITIONS: dict[ClientState, frozenset[ClientState]] = {
    S.IDLE: frozenset({S.CONNECTING, S.CLOSED}),
    S.CONNECTING: frozenset({S.HANDSHAKING, S.BACKOFF, S.CLOSED}),
    S.HANDSHAKING: frozenset({S.AUTHENTICATING, S.BACKOFF, S.CLOSED}),
    S.AUTHENTICATING: frozenset({S.ESTABLISHED, S.BACKOFF, S.CLOSED}),
    S.ESTABLISHED: frozenset({S.CLOSING, S.BACKOFF, S.CLOSED}),
    S.CLOSING: frozenset({S.CLOSED}),
    S.BACKOFF: frozenset({S.CONNECTING, S.CLOSED}),
    S.CLOSED: frozenset(),
}
# States in which a transport exists (or is being opened).
_CONNECTED = frozenset({S.HANDSHAKING, S.AUTHENTICATING, S.ESTABLISHED, S.CLOSING})


@dataclass(slots=True)
class _PendingRequest:
    payload: bytes
    deadline: float
    timeout: float
    sent: bool = False


class ClientConnection:
    """One edge node's link to its hub, across any number of TCP connections."""

    def __init__(
        self,
        node_id: str,
        key: bytes,
        *,
        versions: tuple[int, ...] = (1,),
        handshake_timeout: float = 10.0,
        close_timeout: float = 2.0,
        stable_after: float = 10.0,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        outbox_capacity: int = 4096,
        max_frame: int = MAX_LENGTH_DEFAULT,
        nonce: Callable[[], bytes] = auth.new_nonce,
    ) -> None:
        if not 1 <= len(node_id.encode("utf-8")) <= 64:
            raise ValueError("node id must be 1 to 64 bytes of UTF-8")
        if not versions or not all(1 <= v <= 255 for v in versions):
            raise ValueError("versions must be a non-empty tuple of numbers 1..255")
        self.node_id = node_id
        self._key = key
        self.versions = tuple(sorted(set(versions), reverse=True))
        self.handshake_timeout = handshake_timeout
        self.close_timeout = close_timeout
        self.stable_after = stable_after
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.max_frame = max_frame
        self._nonce_source = nonce
        self.outbox = Outbox(outbox_capacity)

        self.state = S.IDLE
        self.attempt = 0
        self.session_id: bytes | None = None
        self.version: int | None = None
        self.heartbeat: Heartbeat | None = None
        self.window = 0
        self._events: list[LinkEvent] = []
        self._out: list[bytes] = []
        self._decoder: FrameDecoder | None = None
        self._client_nonce = b""
        self._server_nonce = b""
        self._handshake_deadline: float | None = None
        self._backoff_until: float | None = None
        self._stable_at: float | None = None
        self._close_deadline: float | None = None
        self._awaiting_resume = False
        self._first_session = True
        self._requests: dict[str, _PendingRequest] = {}
        self._request_deadlines: list[tuple[float, str]] = []
        self._pings: dict[int, float] = {}
        self._ping_tokens = itertools.count(1)

    # ---------------------------------------------------------------- outputs

    def events(self) -> list[LinkEvent]:
        """Everything that happened since the last call, in order."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        """Bytes for the current connection, in order (empty when there are none)."""
        if self.state is S.ESTABLISHED:
            self._pump()
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`tick` has something to do."""
        deadlines: list[float] = []
        state = self.state
        if state in (S.CONNECTING, S.HANDSHAKING, S.AUTHENTICATING):
            assert self._handshake_deadline is not None
            deadlines.append(self._handshake_deadline)
        elif state is S.BACKOFF:
            assert self._backoff_until is not None
            deadlines.append(self._backoff_until)
        elif state is S.ESTABLISHED:
            assert self.heartbeat is not None
            deadlines.append(self.heartbeat.next_deadline())
            if self._stable_at is not None:
                deadlines.append(self._stable_at)
        elif state is S.CLOSING:
            assert self._close_deadline is not None
            deadlines.append(self._close_deadline)
        self._prune_request_deadlines()
        if self._request_deadlines:
            deadlines.append(self._request_deadlines[0][0])
        return min(deadlines) if deadlines else None

    # ---------------------------------------------------------------- driver inputs

    def connect(self, now: float) -> None:
        """Start the link: the driver gets :class:`ConnectRequested` and opens a connection."""
        self._require({S.IDLE}, "connect")
        self._start_attempt(now, "connect requested")

    def connection_made(self, now: float) -> None:
        """The driver's connection is open: say HELLO."""
        self._require({S.CONNECTING}, "connection_made")
        self._decoder = FrameDecoder(self.max_frame)
        self._client_nonce = self._nonce_source()
        hello = Hello(self.node_id, self.versions, self._client_nonce)
        self._out.append(hello.encode())
        self._set_state(S.HANDSHAKING, "connected, HELLO sent")

    def connection_failed(self, now: float, reason: str) -> None:
        """The driver could not open a connection."""
        self._require({S.CONNECTING}, "connection_failed")
        self._lost(now, f"connect failed: {reason}")

    def connection_lost(self, now: float, reason: str = "connection lost") -> None:
        """The current connection ended. A no-op if the machine already let go of it."""
        state = self.state
        if state in (S.BACKOFF, S.CLOSED):
            return
        if state is S.CLOSING:
            self._set_state(S.CLOSED, f"closed ({reason})")
            return
        self._require(_CONNECTED | {S.CONNECTING}, "connection_lost")
        self._lost(now, reason)

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the current connection."""
        state = self.state
        if state in (S.BACKOFF, S.CLOSED):
            return  # late bytes of a connection the machine already dropped
        self._require(_CONNECTED, "receive_data")
        assert self._decoder is not None
        error: FrameError | None = None
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            frames = getattr(exc, "frames", [])
            error = exc
        if frames and self.heartbeat is not None:
            self.heartbeat.received(now)
        for frame in frames:
            self._handle(frame, now)
            if self.state not in _CONNECTED:
                return
        if error is not None:
            self._protocol_error(now, f"bad frame from the hub: {error.reason}")

    def tick(self, now: float) -> None:
        """Run every timer that is due at ``now``."""
        self._expire_requests(now)
        state = self.state
        if state in (S.CONNECTING, S.HANDSHAKING, S.AUTHENTICATING):
            assert self._handshake_deadline is not None
            if now >= self._handshake_deadline:
                self._events.append(CloseTransport("handshake timed out"))
                self._lost(now, f"handshake did not finish within {self.handshake_timeout:g} s")
        elif state is S.BACKOFF:
            assert self._backoff_until is not None
            if now >= self._backoff_until:
                self._start_attempt(now, "backoff elapsed")
        elif state is S.ESTABLISHED:
            heartbeat = self.heartbeat
            assert heartbeat is not None
            if self._stable_at is not None and now >= self._stable_at:
                self._stable_at = None
                self.backoff.reset()
            if heartbeat.is_dead(now):
                silent = now - heartbeat.last_received
                self._close_connection(CloseCode.PEER_DEAD, "no frame received")
                self._lost(
                    now,
                    f"peer dead: nothing received for {silent:.3g} s"
                    f" ({heartbeat.dead_after} intervals of {heartbeat.interval:g} s)",
                )
            elif heartbeat.should_ping(now):
                self._send_ping(now)
        elif state is S.CLOSING:
            assert self._close_deadline is not None
            if now >= self._close_deadline:
                self._events.append(CloseTransport("close timed out"))
                self._set_state(S.CLOSED, "hub did not answer CLOSE in time")

    # ---------------------------------------------------------------- application inputs

    def send_data(self, body: bytes, now: float) -> int:
        """Queue one DATA frame; returns its msg_id (see :class:`Acknowledged`).

        Raises :class:`~mcptool.link.delivery.OutboxFull` when the outbox is full: that
        is the backpressure; wait for acknowledgements and try again.
        """
        self._require_open("send data")
        if len(body) > self.max_frame - 8:
            raise ValueError(
                f"a DATA body of {len(body)} bytes exceeds the frame limit"
                f" ({self.max_frame - 8} bytes of body at max_frame={self.max_frame})"
            )
        # Frames are encoded when the driver collects bytes (data_to_send), so that many
        # sends in one loop iteration become one batch.
        return self.outbox.push(body)

    def send_request(
        self,
        action: str,
        data: Any,
        now: float,
        *,
        timeout: float = 10.0,
        service: str = "mcptool",
    ) -> str:
        """Queue a REQUEST; returns its traceId. Fails with a :class:`RequestFailed` event
        if no response arrives within ``timeout`` or the connection drops after it was sent
        (requests are at-most-once: only DATA is re-sent after a reconnect)."""
        self._require_open("send a request")
        envelope = RequestEnvelope(action, data, service)
        payload = envelope.to_json()
        if len(payload) > self.max_frame:
            raise ValueError(
                f"a request of {len(payload)} bytes exceeds the frame limit of {self.max_frame}"
            )
        pending = _PendingRequest(payload, now + timeout, timeout)
        self._requests[envelope.trace_id] = pending
        heapq.heappush(self._request_deadlines, (pending.deadline, envelope.trace_id))
        if self.state is S.ESTABLISHED:
            self._send_request(pending)
        return envelope.trace_id

    def send_event(self, body: dict[str, Any]) -> None:
        """A one-way EVENT (no acknowledgement, dropped if the link is down)."""
        self._require({S.ESTABLISHED}, "send an event")
        self._out.append(Event(body).encode())

    def ping(self, now: float) -> int:
        """Send a PING now; a :class:`PongReceived` with the same token carries the RTT."""
        self._require({S.ESTABLISHED}, "ping")
        return self._send_ping(now)

    def close(self, now: float, reason: str = "client closing") -> None:
        """Close the link for good (an orderly CLOSE when a session is up)."""
        state = self.state
        if state in (S.CLOSING, S.CLOSED):
            return
        self._fail_requests(LinkClosed("the link was closed"), only_sent=False)
        if state is S.ESTABLISHED:
            self._out.append(Close(CloseCode.NORMAL, reason).encode())
            self._close_deadline = now + self.close_timeout
            self._set_state(S.CLOSING, reason)
            return
        if state in _CONNECTED or state is S.CONNECTING:
            self._events.append(CloseTransport(reason))
        self._set_state(S.CLOSED, reason)

    # ---------------------------------------------------------------- frame handling

    def _handle(self, frame: Frame, now: float) -> None:
        kind = frame.type
        state = self.state
        try:
            if state is S.ESTABLISHED or state is S.CLOSING:
                if kind is MessageType.ACK:
                    self._on_ack(_U64.unpack(frame.payload)[0] if len(frame.payload) == 8 else -1)
                elif kind is MessageType.PONG:
                    token = Pong.parse(frame.payload).token
                    sent = self._pings.pop(token, None)
                    if sent is not None:
                        self._events.append(PongReceived(token, now - sent))
                elif kind is MessageType.PING:
                    token = Ping.parse(frame.payload).token
                    self._out.append(Pong(token).encode())
                elif kind is MessageType.RESPONSE:
                    self._on_response(frame.payload)
                elif kind is MessageType.EVENT:
                    self._events.append(EventReceived(Event.parse(frame.payload).body))
                elif kind is MessageType.ERROR:
                    error = ErrorMessage.parse(frame.payload)
                    self._events.append(PeerErrorReceived(error.code, error.message))
                elif kind is MessageType.CLOSE:
                    self._on_close(Close.parse(frame.payload), now)
                else:
                    self._protocol_error(now, f"unexpected {kind.name} from the hub")
            elif state is S.HANDSHAKING:
                if kind is MessageType.CHALLENGE:
                    self._on_challenge(Challenge.parse(frame.payload), now)
                elif kind is MessageType.REJECT:
                    self._on_reject(Reject.parse(frame.payload), now)
                else:
                    self._protocol_error(now, f"expected CHALLENGE, got {kind.name}")
            elif state is S.AUTHENTICATING:
                if kind is MessageType.ACCEPT:
                    self._on_accept(Accept.parse(frame.payload), now)
                elif kind is MessageType.REJECT:
                    self._on_reject(Reject.parse(frame.payload), now)
                else:
                    self._protocol_error(now, f"expected ACCEPT or REJECT, got {kind.name}")
        except FrameError as exc:
            self._protocol_error(now, f"bad {kind.name} from the hub: {exc.reason}")

    def _on_challenge(self, challenge: Challenge, now: float) -> None:
        if challenge.version not in self.versions:
            self._out.append(Close(CloseCode.PROTOCOL_ERROR, "version not offered").encode())
            self._fail(
                now,
                VersionMismatch(
                    f"hub chose protocol version {challenge.version}, which this client"
                    f" did not offer ({', '.join(map(str, self.versions))})"
                ),
            )
            return
        self.version = challenge.version
        self._server_nonce = challenge.nonce
        mac = auth.auth_mac(
            self._key,
            client_nonce=self._client_nonce,
            server_nonce=challenge.nonce,
            version=challenge.version,
            offered=self.versions,
            node_id=self.node_id,
        )
        self._out.append(Auth(mac).encode())
        self._set_state(S.AUTHENTICATING, f"CHALLENGE for version {challenge.version}, AUTH sent")

    def _on_accept(self, accept: Accept, now: float) -> None:
        expected = auth.accept_proof(
            self._key,
            client_nonce=self._client_nonce,
            server_nonce=self._server_nonce,
            node_id=self.node_id,
            session_id=accept.session_id,
            heartbeat_ms=accept.heartbeat_ms,
            dead_after=accept.dead_after,
            window=accept.window,
        )
        if not auth.macs_equal(expected, accept.proof):
            self._out.append(Close(CloseCode.PROTOCOL_ERROR, "bad proof").encode())
            self._fail(
                now,
                AuthenticationFailed(
                    f"authentication failed: the hub could not prove it holds the key of"
                    f" node {self.node_id!r} (wrong hub, or a different key there)"
                ),
            )
            return
        if accept.heartbeat_ms == 0 or accept.dead_after == 0 or accept.window == 0:
            self._protocol_error(now, "ACCEPT with a zero heartbeat, dead_after or window")
            return
        self.session_id = accept.session_id
        self.window = accept.window
        self.heartbeat = Heartbeat(accept.heartbeat_ms / 1000, accept.dead_after, now)
        self.heartbeat.last_ping = now
        self._awaiting_resume = True
        self._stable_at = now + self.stable_after
        self._set_state(S.ESTABLISHED, f"session {accept.session_id.hex()[:8]} up")
        # Requests queued while the link was down go out now; DATA waits for the resume
        # ACK, which follows ACCEPT immediately, because it may renumber them.
        for pending in self._requests.values():
            if not pending.sent:
                self._send_request(pending)

    def _on_reject(self, reject: Reject, now: float) -> None:
        reason = reject.reason or "no reason given"
        if reject.code == RejectCode.AUTHENTICATION_FAILED:
            self._fail(
                now,
                AuthenticationFailed(
                    f"authentication failed: the hub refused node {self.node_id!r}"
                    " (unknown node id or wrong key)"
                ),
            )
        elif reject.code == RejectCode.UNSUPPORTED_VERSION:
            self._fail(now, VersionMismatch(f"no common protocol version: {reason}"))
        else:
            self._events.append(CloseTransport("rejected"))
            self._lost(now, f"hub rejected the connection ({reject.code}: {reason})")

    def _on_ack(self, seq: int) -> None:
        if seq < 0:
            raise FrameError("malformed ACK payload")
        outbox = self.outbox
        if self._awaiting_resume:
            self._awaiting_resume = False
            last = outbox.resume(seq, self._first_session)
            self._first_session = False
            assert self.session_id is not None and self.heartbeat is not None
            assert self.version is not None
            self._events.append(
                SessionEstablished(
                    self.node_id,
                    self.session_id,
                    self.version,
                    self.heartbeat.interval,
                    self.heartbeat.dead_after,
                    self.window,
                    seq,
                )
            )
        else:
            last = outbox.acknowledge(seq)
        if last:
            self._events.append(Acknowledged(last))

    def _on_response(self, payload: bytes) -> None:
        try:
            response = parse_response(payload)
        except EnvelopeError as exc:
            self._out.append(ErrorMessage(ErrorCode.BAD_PAYLOAD, str(exc)).encode())
            trace_id = read_trace_id(payload, "response")
            if trace_id is not None and self._requests.pop(trace_id, None):
                self._events.append(
                    RequestFailed(trace_id, LinkError(f"hub sent a bad response: {exc}"))
                )
            return
        trace_id = response.trace_id
        if trace_id is not None and self._requests.pop(trace_id, None) is not None:
            self._events.append(ResponseReceived(trace_id, response))

    def _on_close(self, close: Close, now: float) -> None:
        if self.state is S.CLOSING:
            self._events.append(CloseTransport("closed"))
            self._set_state(S.CLOSED, "hub confirmed CLOSE")
            return
        self._out.append(Close(CloseCode.NORMAL, "bye").encode())
        self._events.append(CloseTransport("hub closed"))
        self._lost(now, f"hub closed the link ({close.code}: {close.reason or 'no reason'})")

    # ---------------------------------------------------------------- helpers

    def _pump(self) -> None:
        if self._awaiting_resume:
            return
        outbox = self.outbox
        room = self.window - outbox.in_flight
        if room > 0 and outbox.has_unsent:
            append = self._out.append
            pack = DATA_HEAD.pack
            for item in outbox.take(room):
                body = item.body
                append(pack(MAGIC, VERSION, len(body) + 8, _DATA_TYPE, item.seq))
                append(body)

    def _send_request(self, pending: _PendingRequest) -> None:
        pending.sent = True
        self._out.append(encode_frame(Frame(MessageType.REQUEST, pending.payload)))

    def _send_ping(self, now: float) -> int:
        token = next(self._ping_tokens)
        self._pings[token] = now
        self._out.append(Ping(token).encode())
        return token

    def _start_attempt(self, now: float, reason: str) -> None:
        self.attempt += 1
        self._handshake_deadline = now + self.handshake_timeout
        self._backoff_until = None
        self._set_state(S.CONNECTING, reason)
        self._events.append(ConnectRequested(self.attempt))

    def _close_connection(self, code: CloseCode, reason: str) -> None:
        self._out.append(Close(code, reason).encode())
        self._events.append(CloseTransport(reason))

    def _protocol_error(self, now: float, reason: str) -> None:
        if self.state not in _CONNECTED:
            return
        self._close_connection(CloseCode.PROTOCOL_ERROR, reason[:200])
        if self.state is S.CLOSING:
            self._set_state(S.CLOSED, f"protocol error: {reason}")
        else:
            self._lost(now, f"protocol error: {reason}")

    def _lost(self, now: float, reason: str) -> None:
        self._reset_connection()
        self._fail_requests(ConnectionLost(f"connection lost before the response: {reason}"))
        if not self.reconnect:
            self._set_state(S.CLOSED, reason)
            self._fail_requests(LinkClosed(f"link closed: {reason}"), only_sent=False)
            return
        delay = self.backoff.next_delay()
        self._backoff_until = now + delay
        self._set_state(S.BACKOFF, f"{reason}; retrying in {delay:.2f} s")

    def _fail(self, now: float, error: LinkError) -> None:
        if self.state in _CONNECTED:
            self._events.append(CloseTransport(str(error)))
        self._reset_connection()
        self._events.append(LinkFailed(error))
        self._set_state(S.CLOSED, str(error))
        self._fail_requests(LinkClosed(str(error)), only_sent=False)

    def _reset_connection(self) -> None:
        self._decoder = None
        self.heartbeat = None
        self.session_id = None
        self._stable_at = None
        self._awaiting_resume = False
        self._pings.clear()
        self.outbox.connection_lost()

    def _fail_requests(self, error: LinkError, *, only_sent: bool = True) -> None:
        for trace_id, pending in list(self._requests.items()):
            if pending.sent or not only_sent:
                del self._requests[trace_id]
                self._events.append(RequestFailed(trace_id, error))

    def _expire_requests(self, now: float) -> None:
        heap = self._request_deadlines
        while heap and heap[0][0] <= now:
            _, trace_id = heapq.heappop(heap)
            pending = self._requests.pop(trace_id, None)
            if pending is not None:
                self._events.append(
                    RequestFailed(
                        trace_id, RequestTimeout(f"no response within {pending.timeout:g} s")
                    )
                )

    def _prune_request_deadlines(self) -> None:
        heap = self._request_deadlines
        while heap and heap[0][1] not in self._requests:
            heapq.heappop(heap)

    def _require(self, allowed: frozenset[ClientState] | set[ClientState], what: str) -> None:
        if self.state not in allowed:
            names = ", ".join(sorted(s.name for s in allowed))
            raise LinkStateError(f"cannot {what} in state {self.state.name} (only in {names})")

    def _require_open(self, what: str) -> None:
        if self.state in (S.CLOSING, S.CLOSED):
            raise LinkClosed(f"cannot {what}: the link is {self.state.value}")

    def _set_state(self, new: ClientState, reason: str) -> None:
        old = self.state
        if new not in CLIENT_TRANSITIONS[old]:
            raise LinkStateError(f"illegal transition {old.name} -> {new.name} ({reason})")
        self.state = new
        self._events.append(StateChanged(old, new, reason))
