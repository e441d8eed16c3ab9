"""What the link's state machines tell their driver: plain, immutable event records.

Events are facts ("a frame was acknowledged", "the session is up"); the two that are
orders to the driver are :class:`ConnectRequested` (open a connection now) and
:class:`CloseTransport` (close the current connection once pending bytes are written).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from mcptool.frame import ResponseEnvelope
from mcptool.link.errors import LinkError


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: enum.Enum
    new: enum.Enum
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectRequested:
    attempt: int


@dataclass(frozen=True, slots=True)
class CloseTransport:
    reason: str


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    node_id: str
    session_id: bytes
    version: int
    heartbeat_interval: float
    dead_after: int
    window: int
    resume_seq: int  # the last sequence number the hub had delivered for this node


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """Every frame the application queued up to and including ``msg_id`` is delivered."""

    msg_id: int


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    trace_id: str
    response: ResponseEnvelope


@dataclass(frozen=True, slots=True)
class RequestFailed:
    trace_id: str
    error: LinkError


@dataclass(frozen=True, slots=True)
class PongReceived:
    token: int
    rtt: float


@dataclass(frozen=True, slots=True)
class EventReceived:
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PeerErrorReceived:
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class LinkFailed:
    """A failure that retrying cannot fix (wrong key, no common version): the link is closed."""

    error: LinkError


@dataclass(frozen=True, slots=True)
class DataReceived:
    seq: int
    body: bytes


@dataclass(frozen=True, slots=True)
class RequestReceived:
    payload: bytes


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    """A peer that did not get in: why (for the hub's log, never sent to the peer).

    ``kind`` is one of a few words (``timeout``, ``busy``, ``bad frame``,
    ``bad handshake``, ``no common version``, ``unknown node``, ``wrong key``, ``gone``):
    what the hub counts refusals by; ``reason`` is the whole story of this one.
    """

    node_id: str | None
    reason: str
    kind: str = "bad handshake"


Event = (
    StateChanged
    | ConnectRequested
    | CloseTransport
    | SessionEstablished
    | Acknowledged
    | ResponseReceived
    | RequestFailed
    | PongReceived
    | EventReceived
    | PeerErrorReceived
    | LinkFailed
    | DataReceived
    | RequestReceived
    | HandshakeFailed
)
