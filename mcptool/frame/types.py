"""Constants of MCP version 1: magic, versions, limits and message types."""

from __future__ import annotations

from enum import IntEnum

MAGIC = 0x5A
VERSION = 1
SUPPORTED_VERSIONS: frozenset[int] = frozenset({VERSION})
HEADER_SIZE = 5
# The length field is a u16, so 65,535 is the protocol's hard ceiling; the default is far
# lower so that one hostile header cannot make a peer reserve 64 KiB per connection.
MAX_LENGTH_LIMIT = 0xFFFF
MAX_LENGTH_DEFAULT = 16384


class MessageType(IntEnum):
    """Message types, grouped by range: handshake, liveness, data, RPC, control."""

    HELLO = 0x01
    CHALLENGE = 0x02
    AUTH = 0x03
    ACCEPT = 0x04
    REJECT = 0x05
    PING = 0x10
    PONG = 0x11
    DATA = 0x20
    ACK = 0x21
    REQUEST = 0x30
    RESPONSE = 0x31
    EVENT = 0x32
    ERROR = 0x3E
    CLOSE = 0x3F

    @classmethod
    def parse(cls, text: str) -> MessageType:
        """A type from its name (any case) or number (decimal or 0x hex)."""
        name = text.strip().upper()
        if name in cls.__members__:
            return cls[name]
        try:
            return cls(int(name, 0))
        except ValueError:
            names = ", ".join(cls.__members__)
            raise ValueError(f"unknown message type {text!r}: use one of {names}") from None
