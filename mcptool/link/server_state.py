"""The hub end of one MCP connection as a sans-IO state machine.

::

    AWAIT_HELLO -> CHALLENGED -> ESTABLISHED -> CLOSED
         |              |                         ^
         +--------------+--- (reject, timeout, garbage, protocol error)

Before authentication a connection is held to a small frame limit and a handshake
deadline, and anything unexpected closes it at once: an unauthenticated peer must cost
the hub little. Unknown node ids get a CHALLENGE like known ones, and a REJECT only after
AUTH, so the hub does not tell an attacker which node ids exist.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Callable, Collection, Mapping
from typing import Any

from mcptool.frame import (
    MAX_LENGTH_DEFAULT,
    SUPPORTED_VERSIONS,
    Accept,
    Ack,
    Auth,
    Challenge,
    Close,
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
    encode_frame,
)
from mcptool.link import auth
from mcptool.link.codes import CloseCode, ErrorCode, RejectCode
from mcptool.link.delivery import Ledger, MemoryLedger
from mcptool.link.errors import LinkStateError
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
from mcptool.link.events import Event as LinkEvent
from mcptool.link.heartbeat import Heartbeat

# DATA starts with its u64 sequence number: read it without building a Data per frame.
_SEQ = struct.Struct(">Q")
# The largest HELLO: node id (1 + 64) + versions (1 + 255) + nonce (16).
HANDSHAKE_MAX_FRAME = 337


class ServerState(enum.Enum):
    AWAIT_HELLO = "await-hello"
    CHALLENGED = "challenged"
    ESTABLISHED = "established"
    CLOSED = "closed"


S = ServerState
SERVER_TRANSITIONS: dict[ServerState, frozenset[ServerState]] = {
    S.AWAIT_HELLO: frozenset({S.CHALLENGED, S.CLOSED}),
    S.CHALLENGED: frozenset({S.ESTABLISHED, S.CLOSED}),
    S.ESTABLISHED: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
}


class ServerConnection:
    """One accepted connection, from the first byte to close."""

    def __init__(
        self,
        keys: Mapping[str, bytes],
        now: float,
        *,
        ledger: Ledger | None = None,
        versions: Collection[int] = SUPPORTED_VERSIONS,
        heartbeat_interval: float = 10.0,
        dead_after: int = 3,
        window: int = 256,
        handshake_timeout: float = 5.0,
        hello_timeout: float = 2.0,
        max_frame: int = MAX_LENGTH_DEFAULT,
        nonce: Callable[[], bytes] = auth.new_nonce,
        session_id: Callable[[], bytes] = auth.new_session_id,
    ) -> None:
        if not 0.001 <= heartbeat_interval <= 4_000_000:
            raise ValueError("heartbeat interval must be 1 ms .. 4,000,000 s")
        if not 1 <= dead_after <= 255 or not 1 <= window <= 65535:
            raise ValueError("dead_after must be 1..255 and window 1..65535")
        self.keys = keys
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self.versions = frozenset(versions)
        self.heartbeat_ms = round(heartbeat_interval * 1000)
        self.dead_after = dead_after
        self.window = window
        self.handshake_timeout = handshake_timeout
        self.hello_timeout = min(hello_timeout, handshake_timeout)
        self.max_frame = max_frame
        self._nonce_source = nonce
        self._session_id_source = session_id

        self.state = S.AWAIT_HELLO
        self.node_id: str | None = None
        self.session_id: bytes | None = None
        self.version: int | None = None
        self.heartbeat: Heartbeat | None = None
        self.opened_at = now
        self.frames_received = 0
        self._handshake_deadline = now + handshake_timeout
        # A peer that has not even said who it is gets less time than one that is
        # authenticating: idle and byte-a-time sockets are the cheapest way to fill the
        # hub's handshake slots (docs/LINK.md, "Limits").
        self._hello_deadline = now + self.hello_timeout
        self._decoder = FrameDecoder(min(HANDSHAKE_MAX_FRAME, max_frame))
        self._hello: Hello | None = None
        self._server_nonce = b""
        self._events: list[LinkEvent] = []
        self._out: list[bytes] = []

    # ---------------------------------------------------------------- outputs

    def events(self) -> list[LinkEvent]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def next_deadline(self) -> float | None:
        if self.state is S.ESTABLISHED:
            assert self.heartbeat is not None
            return self.heartbeat.next_deadline()
        if self.state is S.CLOSED:
            return None
        if self.state is S.AWAIT_HELLO:
            return self._hello_deadline
        return self._handshake_deadline

    # ---------------------------------------------------------------- inputs

    def receive_data(self, data: bytes, now: float) -> None:
        if self.state is S.CLOSED:
            return  # bytes that were in flight when the hub closed: nothing to do
        error: FrameError | None = None
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            frames = getattr(exc, "frames", [])
            error = exc
        if self.state is S.ESTABLISHED:
            self._established_frames(frames, now)
        else:
            for frame in frames:
                self._handshake_frame(frame, now)
                if self.state is not S.CHALLENGED and self.state is not S.AWAIT_HELLO:
                    break
            if self.state is S.ESTABLISHED and len(frames) > 1:
                # Frames pipelined right behind AUTH belong to the session.
                index = next(
                    (i for i, f in enumerate(frames) if f.type is MessageType.AUTH), len(frames)
                )
                self._established_frames(frames[index + 1 :], now)
        if error is not None and self.state is not S.CLOSED:
            if self.state is not S.ESTABLISHED:
                self._events.append(
                    HandshakeFailed(self.node_id, f"bad frame: {error.reason}", "bad frame")
                )
            self._drop(CloseCode.PROTOCOL_ERROR, f"bad frame: {error.reason}")

    def tick(self, now: float) -> None:
        state = self.state
        if state is S.AWAIT_HELLO and now >= self._hello_deadline:
            self._events.append(
                HandshakeFailed(
                    None, f"no complete HELLO within {self.hello_timeout:g} s", "timeout"
                )
            )
            self._drop(CloseCode.HANDSHAKE_TIMEOUT, "handshake timed out")
        elif state is S.CHALLENGED and now >= self._handshake_deadline:
            self._events.append(
                HandshakeFailed(
                    self.node_id,
                    f"handshake not finished within {self.handshake_timeout:g} s",
                    "timeout",
                )
            )
            self._drop(CloseCode.HANDSHAKE_TIMEOUT, "handshake timed out")
        elif state is S.ESTABLISHED:
            heartbeat = self.heartbeat
            assert heartbeat is not None
            if heartbeat.is_dead(now):
                silent = now - heartbeat.last_received
                self._drop(
                    CloseCode.PEER_DEAD,
                    f"peer dead: nothing received for {silent:.3g} s"
                    f" ({heartbeat.dead_after} intervals of {heartbeat.interval:g} s)",
                )
            elif heartbeat.should_ping(now):
                self._out.append(Ping(int(now * 1000) & 0xFFFFFFFFFFFFFFFF).encode())

    def connection_lost(self, now: float, reason: str = "connection lost") -> None:
        if self.state is S.AWAIT_HELLO or self.state is S.CHALLENGED:
            self._events.append(
                HandshakeFailed(self.node_id, f"left during the handshake ({reason})", "gone")
            )
        if self.state is not S.CLOSED:
            self._set_state(S.CLOSED, reason)

    # ---------------------------------------------------------------- application inputs

    def send_response(self, payload: bytes) -> bool:
        """Queue a RESPONSE (a JSON envelope); False if the connection is already closed."""
        if self.state is S.CLOSED:
            return False
        self._require(S.ESTABLISHED, "send a response")
        self._out.append(encode_frame(Frame(MessageType.RESPONSE, payload)))
        return True

    def send_event(self, body: dict[str, Any]) -> bool:
        if self.state is S.CLOSED:
            return False
        self._require(S.ESTABLISHED, "send an event")
        self._out.append(Event(body).encode())
        return True

    def close(self, code: CloseCode = CloseCode.GOING_AWAY, reason: str = "hub closing") -> None:
        if self.state is not S.CLOSED:
            self._drop(code, reason)

    def refuse_busy(self, reason: str) -> None:
        """Turn away a connection still in its handshake: ``REJECT(busy)``, then close.

        The hub's admission does this to the oldest stranger when a newer one needs its
        slot (see :class:`~mcptool.link.admission.Admission`).
        """
        self._require_handshake("refuse a connection")
        self._events.append(HandshakeFailed(self.node_id, reason, "busy"))
        self._reject(RejectCode.BUSY, "hub busy, try later")

    # ---------------------------------------------------------------- handshake

    def _handshake_frame(self, frame: Frame, now: float) -> None:
        kind = frame.type
        try:
            if self.state is S.AWAIT_HELLO and kind is MessageType.HELLO:
                self._on_hello(Hello.parse(frame.payload))
            elif self.state is S.CHALLENGED and kind is MessageType.AUTH:
                self._on_auth(Auth.parse(frame.payload), now)
            else:
                expected = "HELLO" if self.state is S.AWAIT_HELLO else "AUTH"
                self._events.append(
                    HandshakeFailed(
                        self.node_id, f"expected {expected}, got {kind.name}", "bad handshake"
                    )
                )
                self._reject(RejectCode.BAD_HELLO, f"expected {expected}, got {kind.name}")
        except FrameError as exc:
            self._events.append(
                HandshakeFailed(self.node_id, f"bad {kind.name}: {exc.reason}", "bad handshake")
            )
            self._reject(RejectCode.BAD_HELLO, f"bad {kind.name}: {exc.reason}")

    def _on_hello(self, hello: Hello) -> None:
        self.node_id = hello.node_id
        common = self.versions.intersection(hello.versions)
        if not common:
            offered = ", ".join(map(str, hello.versions)) or "none"
            speaks = ", ".join(map(str, sorted(self.versions)))
            self._events.append(
                HandshakeFailed(
                    hello.node_id, f"no common version (offered {offered})", "no common version"
                )
            )
            self._reject(
                RejectCode.UNSUPPORTED_VERSION,
                f"hub speaks version {speaks}, client offered {offered}",
            )
            return
        self.version = max(common)
        self._hello = hello
        self._server_nonce = self._nonce_source()
        self._out.append(Challenge(self.version, self._server_nonce).encode())
        self._set_state(S.CHALLENGED, f"HELLO from {hello.node_id!r}, CHALLENGE sent")

    def _on_auth(self, message: Auth, now: float) -> None:
        hello = self._hello
        assert hello is not None and self.version is not None
        key = self.keys.get(hello.node_id)
        # An unknown node costs the same HMAC as a known one, against a key nobody has.
        check_key = key if key is not None else hashlib.sha256(self._server_nonce).digest()
        expected = auth.auth_mac(
            check_key,
            client_nonce=hello.nonce,
            server_nonce=self._server_nonce,
            version=self.version,
            offered=hello.versions,
            node_id=hello.node_id,
        )
        if not auth.macs_equal(expected, message.mac) or key is None:
            why = "unknown node id" if key is None else "wrong key (bad AUTH mac)"
            self._events.append(
                HandshakeFailed(
                    hello.node_id,
                    f"authentication failed: {why}",
                    "unknown node" if key is None else "wrong key",
                )
            )
            self._reject(RejectCode.AUTHENTICATION_FAILED, "authentication failed")
            return
        session_id = self._session_id_source()
        proof = auth.accept_proof(
            key,
            client_nonce=hello.nonce,
            server_nonce=self._server_nonce,
            node_id=hello.node_id,
            session_id=session_id,
            heartbeat_ms=self.heartbeat_ms,
            dead_after=self.dead_after,
            window=self.window,
        )
        self.session_id = session_id
        self.heartbeat = Heartbeat(self.heartbeat_ms / 1000, self.dead_after, now)
        self.heartbeat.last_ping = now
        self._decoder.max_length = self.max_frame
        resume = self.ledger.last(hello.node_id)
        self._out.append(
            Accept(session_id, self.heartbeat_ms, self.dead_after, self.window, proof).encode()
        )
        self._out.append(Ack(resume).encode())
        self._set_state(S.ESTABLISHED, f"node {hello.node_id!r} authenticated")
        self._events.append(
            SessionEstablished(
                hello.node_id,
                session_id,
                self.version,
                self.heartbeat_ms / 1000,
                self.dead_after,
                self.window,
                resume,
            )
        )

    def _reject(self, code: RejectCode, reason: str) -> None:
        self._out.append(Reject(code, reason).encode())
        self._events.append(CloseTransport(reason))
        self._set_state(S.CLOSED, f"rejected: {reason}")

    # ---------------------------------------------------------------- session

    def _established_frames(self, frames: list[Frame], now: float) -> None:
        if not frames:
            return
        assert self.heartbeat is not None and self.node_id is not None
        self.heartbeat.last_received = now
        self.frames_received += len(frames)
        node_id = self.node_id
        ledger = self.ledger
        # The ledger, not this connection, holds the count: a replaced session of the
        # same node may have delivered more since this one started.
        last = start = ledger.last(node_id)
        acked = False
        events = self._events
        data_type = MessageType.DATA
        unpack = _SEQ.unpack_from
        try:
            for frame in frames:
                kind, payload = frame.type, frame.payload
                if kind is data_type:
                    if len(payload) < 8:
                        self._drop(
                            CloseCode.PROTOCOL_ERROR, "DATA shorter than its sequence number"
                        )
                        break
                    seq = unpack(payload)[0]
                    acked = True
                    if seq > last:
                        last = seq
                        events.append(DataReceived(seq, payload[8:]))
                    continue
                if not self._session_frame(frame, now):
                    break
        finally:
            # The ledger counts exactly the DataReceived events queued, whatever stops the
            # loop: a driver delivers what is queued even when the connection then dies,
            # and a frame counted but not delivered (or the reverse) is lost (or doubled).
            if last != start:
                ledger.advance(node_id, last)
        if acked and self.state is S.ESTABLISHED:
            self._out.append(Ack(last).encode())

    def _session_frame(self, frame: Frame, now: float) -> bool:
        """Handle one non-DATA frame; False when the connection is gone."""
        kind = frame.type
        try:
            if kind is MessageType.PING:
                self._out.append(Pong(Ping.parse(frame.payload).token).encode())
            elif kind is MessageType.PONG or kind is MessageType.ACK:
                pass  # life; the hub sends no DATA, so an ACK acknowledges nothing
            elif kind is MessageType.REQUEST:
                self._events.append(RequestReceived(frame.payload))
            elif kind is MessageType.EVENT:
                self._events.append(EventReceived(Event.parse(frame.payload).body))
            elif kind is MessageType.ERROR:
                error = ErrorMessage.parse(frame.payload)
                self._events.append(PeerErrorReceived(error.code, error.message))
            elif kind is MessageType.CLOSE:
                close = Close.parse(frame.payload)
                self._drop(CloseCode.NORMAL, f"node closed ({close.code}: {close.reason})")
                return False
            else:
                self._drop(CloseCode.PROTOCOL_ERROR, f"unexpected {kind.name} in a session")
                return False
        except FrameError as exc:
            # A malformed optional message is reported, not fatal: the stream is in step.
            self._out.append(ErrorMessage(ErrorCode.BAD_PAYLOAD, exc.reason[:200]).encode())
        return True

    # ---------------------------------------------------------------- helpers

    def _drop(self, code: CloseCode, reason: str) -> None:
        self._out.append(Close(code, reason[:200]).encode())
        self._events.append(CloseTransport(reason))
        self._set_state(S.CLOSED, reason)

    def _require_handshake(self, what: str) -> None:
        if self.state is not S.AWAIT_HELLO and self.state is not S.CHALLENGED:
            raise LinkStateError(f"cannot {what} in state {self.state.name} (only in a handshake)")

    def _require(self, state: ServerState, what: str) -> None:
        if self.state is not state:
            raise LinkStateError(f"cannot {what} in state {self.state.name} (only in {state.name})")

    def _set_state(self, new: ServerState, reason: str) -> None:
        old = self.state
        if new not in SERVER_TRANSITIONS[old]:
            raise LinkStateError(f"illegal transition {old.name} -> {new.name} ({reason})")
        self.state = new
        self._events.append(StateChanged(old, new, reason))
