"""Typed MCP messages: what each frame type's payload means.

Layouts are defined in ``spec``; the messages a link sends at rate (DATA, ACK, PING,
PONG) parse and build with ``struct`` fast paths whose formats are read off that spec and
which property tests prove identical to it. The handshake messages, a few per session,
go through the construct definitions themselves. Not through construct's compiled form:
in construct 2.10.70 a compiled ``Bytes(n)`` returns fewer than n bytes from a short
payload instead of failing (found by tests/frame/test_messages.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from construct import ConstructError, StreamError, TerminatedError

from mcptool.frame import spec
from mcptool.frame.codec import Frame, encode_frame
from mcptool.frame.envelope import (
    RequestEnvelope,
    ResponseEnvelope,
    parse_event,
    parse_request,
    parse_response,
)
from mcptool.frame.errors import BadPayload, FrameError
from mcptool.frame.jsontext import dump_json
from mcptool.frame.types import VERSION, MessageType

_U64 = struct.Struct(spec.struct_format(spec.Ack))
_U64_PREFIX = struct.Struct(spec.struct_format(spec.Data, fields=1))
assert _U64.format == _U64_PREFIX.format == spec.struct_format(spec.Ping) == ">Q"


class Message:
    """Base of typed messages: ``to_frame()`` / ``encode()`` and ``parse_message()``."""

    __slots__ = ()
    TYPE: ClassVar[MessageType]

    def payload(self) -> bytes:
        raise NotImplementedError

    def to_frame(self, version: int = VERSION) -> Frame:
        return Frame(self.TYPE, self.payload(), version)

    def encode(self, version: int = VERSION) -> bytes:
        """The whole frame on the wire."""
        return encode_frame(self.to_frame(version))


def _parse_with(definition: Any, name: str, payload: bytes) -> Any:
    try:
        return definition.parse(payload)
    # construct's compiled parsers let struct/Unicode/index errors through unwrapped
    except (ConstructError, ValueError, struct.error, IndexError) as exc:
        raise BadPayload(f"malformed {name} payload ({len(payload)} bytes): {_why(exc)}") from None


def _why(exc: Exception) -> str:
    if isinstance(exc, TerminatedError):
        return "bytes left after the last field"
    if isinstance(exc, StreamError | struct.error | IndexError):
        return "too short for its fields"
    if isinstance(exc, UnicodeError) or "decode" in str(exc):
        return "text is not valid UTF-8"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _build_with(definition: Any, name: str, values: dict[str, Any]) -> bytes:
    try:
        return bytes(definition.build(values))
    except (ConstructError, ValueError, struct.error, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadPayload(f"cannot build {name}: {reason}") from None


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """Client opens: who it is, which versions it speaks, its fresh nonce."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    _SPEC: ClassVar[Any] = spec.Hello
    node_id: str
    versions: tuple[int, ...]
    nonce: bytes

    def payload(self) -> bytes:
        if not 1 <= len(self.node_id.encode()) <= 64:
            raise BadPayload("HELLO node_id must be 1..64 bytes of UTF-8")
        fields = {"node_id": self.node_id, "versions": list(self.versions), "nonce": self.nonce}
        return _build_with(self._SPEC, "HELLO", fields)

    @classmethod
    def parse(cls, payload: bytes) -> Hello:
        c = _parse_with(cls._SPEC, "HELLO", payload)
        if not c.node_id:
            raise BadPayload("HELLO with an empty node_id")
        return cls(c.node_id, tuple(c.versions), c.nonce)


@dataclass(frozen=True, slots=True)
class Challenge(Message):
    """Server answers HELLO: the version it chose and its own fresh nonce."""

    TYPE: ClassVar[MessageType] = MessageType.CHALLENGE
    _SPEC: ClassVar[Any] = spec.Challenge
    version: int
    nonce: bytes

    def payload(self) -> bytes:
        return _build_with(self._SPEC, "CHALLENGE", {"version": self.version, "nonce": self.nonce})

    @classmethod
    def parse(cls, payload: bytes) -> Challenge:
        c = _parse_with(cls._SPEC, "CHALLENGE", payload)
        return cls(c.version, c.nonce)


@dataclass(frozen=True, slots=True)
class Auth(Message):
    """Client's proof that it holds the shared key (an HMAC, see docs/LINK.md)."""

    TYPE: ClassVar[MessageType] = MessageType.AUTH
    _SPEC: ClassVar[Any] = spec.Auth
    mac: bytes

    def payload(self) -> bytes:
        return _build_with(self._SPEC, "AUTH", {"mac": self.mac})

    @classmethod
    def parse(cls, payload: bytes) -> Auth:
        return cls(_parse_with(cls._SPEC, "AUTH", payload).mac)


@dataclass(frozen=True, slots=True)
class Accept(Message):
    """Server admits the client: session, heartbeat settings, window, the server's proof."""

    TYPE: ClassVar[MessageType] = MessageType.ACCEPT
    _SPEC: ClassVar[Any] = spec.Accept
    session_id: bytes
    heartbeat_ms: int
    dead_after: int
    window: int
    proof: bytes

    def payload(self) -> bytes:
        fields = {
            "session_id": self.session_id,
            "heartbeat_ms": self.heartbeat_ms,
            "dead_after": self.dead_after,
            "window": self.window,
            "proof": self.proof,
        }
        return _build_with(self._SPEC, "ACCEPT", fields)

    @classmethod
    def parse(cls, payload: bytes) -> Accept:
        c = _parse_with(cls._SPEC, "ACCEPT", payload)
        return cls(c.session_id, c.heartbeat_ms, c.dead_after, c.window, c.proof)


@dataclass(frozen=True, slots=True)
class Reject(Message):
    """Server refuses the client, with a code and a reason a person can read."""

    TYPE: ClassVar[MessageType] = MessageType.REJECT
    _SPEC: ClassVar[Any] = spec.Reject
    code: int
    reason: str

    def payload(self) -> bytes:
        return _build_with(self._SPEC, "REJECT", {"code": self.code, "reason": self.reason})

    @classmethod
    def parse(cls, payload: bytes) -> Reject:
        c = _parse_with(cls._SPEC, "REJECT", payload)
        return cls(c.code, c.reason)


def _u64(name: str, value: int) -> bytes:
    try:
        return _U64.pack(value)
    except struct.error:
        raise BadPayload(f"{name} value {value!r} is not a u64") from None


def _parse_u64(name: str, payload: bytes) -> int:
    if len(payload) != 8:
        raise BadPayload(f"malformed {name} payload: {len(payload)} bytes, expected 8")
    return _U64.unpack(payload)[0]


@dataclass(frozen=True, slots=True)
class Ping(Message):
    """Liveness probe; the peer echoes ``token`` in a PONG (handy for round-trip times)."""

    TYPE: ClassVar[MessageType] = MessageType.PING
    token: int

    def payload(self) -> bytes:
        return _u64("PING token", self.token)

    @classmethod
    def parse(cls, payload: bytes) -> Ping:
        return cls(_parse_u64("PING", payload))


@dataclass(frozen=True, slots=True)
class Pong(Message):
    """Answer to a PING, carrying its token."""

    TYPE: ClassVar[MessageType] = MessageType.PONG
    token: int

    def payload(self) -> bytes:
        return _u64("PONG token", self.token)

    @classmethod
    def parse(cls, payload: bytes) -> Pong:
        return cls(_parse_u64("PONG", payload))


@dataclass(frozen=True, slots=True)
class Data(Message):
    """Application data with a sequence number; delivered once, in order, after an ACK."""

    TYPE: ClassVar[MessageType] = MessageType.DATA
    seq: int
    body: bytes

    def payload(self) -> bytes:
        return _u64("DATA seq", self.seq) + self.body

    @classmethod
    def parse(cls, payload: bytes) -> Data:
        if len(payload) < 8:
            raise BadPayload(f"malformed DATA payload: {len(payload)} bytes, needs at least 8")
        return cls(_U64_PREFIX.unpack_from(payload)[0], payload[8:])


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """Cumulative acknowledgement: every DATA with a sequence number <= ``seq`` arrived."""

    TYPE: ClassVar[MessageType] = MessageType.ACK
    seq: int

    def payload(self) -> bytes:
        return _u64("ACK seq", self.seq)

    @classmethod
    def parse(cls, payload: bytes) -> Ack:
        return cls(_parse_u64("ACK", payload))


@dataclass(frozen=True, slots=True)
class Request(Message):
    """An RPC call: the JSON request envelope."""

    TYPE: ClassVar[MessageType] = MessageType.REQUEST
    envelope: RequestEnvelope

    def payload(self) -> bytes:
        return self.envelope.to_json()

    @classmethod
    def parse(cls, payload: bytes) -> Request:
        return cls(parse_request(payload))


@dataclass(frozen=True, slots=True)
class Response(Message):
    """The answer to a REQUEST: the JSON response envelope."""

    TYPE: ClassVar[MessageType] = MessageType.RESPONSE
    envelope: ResponseEnvelope

    def payload(self) -> bytes:
        return self.envelope.to_json()

    @classmethod
    def parse(cls, payload: bytes) -> Response:
        return cls(parse_response(payload))


@dataclass(frozen=True, slots=True)
class Event(Message):
    """A one-way notification: any JSON object (no answer, no delivery guarantee)."""

    TYPE: ClassVar[MessageType] = MessageType.EVENT
    body: dict[str, Any]

    def payload(self) -> bytes:
        return dump_json(self.body, "event")

    @classmethod
    def parse(cls, payload: bytes) -> Event:
        return cls(parse_event(payload))


@dataclass(frozen=True, slots=True)
class ErrorMessage(Message):
    """A protocol-level error report from the peer (the connection may go on)."""

    TYPE: ClassVar[MessageType] = MessageType.ERROR
    _SPEC: ClassVar[Any] = spec.Error
    code: int
    message: str

    def payload(self) -> bytes:
        return _build_with(self._SPEC, "ERROR", {"code": self.code, "message": self.message})

    @classmethod
    def parse(cls, payload: bytes) -> ErrorMessage:
        c = _parse_with(cls._SPEC, "ERROR", payload)
        return cls(c.code, c.message)


@dataclass(frozen=True, slots=True)
class Close(Message):
    """Orderly end of the session, with a code and a reason."""

    TYPE: ClassVar[MessageType] = MessageType.CLOSE
    _SPEC: ClassVar[Any] = spec.Close
    code: int
    reason: str

    def payload(self) -> bytes:
        return _build_with(self._SPEC, "CLOSE", {"code": self.code, "reason": self.reason})

    @classmethod
    def parse(cls, payload: bytes) -> Close:
        c = _parse_with(cls._SPEC, "CLOSE", payload)
        return cls(c.code, c.reason)


MESSAGE_CLASSES: dict[MessageType, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello, Challenge, Auth, Accept, Reject, Ping, Pong, Data, Ack,
        Request, Response, Event, ErrorMessage, Close,
    )
}  # fmt: skip


def parse_message(frame: Frame) -> Message:
    """The typed message a frame carries; ``BadPayload``/``EnvelopeError`` if malformed."""
    try:
        cls = MESSAGE_CLASSES[frame.type]
    except KeyError:
        raise FrameError(f"no message type 0x{int(frame.type):02X}") from None
    return cls.parse(frame.payload)  # type: ignore[attr-defined, no-any-return]
