"""Numeric codes the link puts in REJECT, CLOSE and ERROR frames (docs/LINK.md lists them)."""

from __future__ import annotations

from enum import IntEnum


class RejectCode(IntEnum):
    AUTHENTICATION_FAILED = 1
    UNSUPPORTED_VERSION = 2
    BUSY = 3
    BAD_HELLO = 4


class CloseCode(IntEnum):
    NORMAL = 0
    GOING_AWAY = 1
    PROTOCOL_ERROR = 2
    PEER_DEAD = 3
    REPLACED = 4
    HANDSHAKE_TIMEOUT = 5


class ErrorCode(IntEnum):
    BAD_PAYLOAD = 400
