"""The ``FrameError`` family: every way bytes can fail to be an MCP frame.

Each error carries the stream ``offset`` where the problem starts and a ``reason`` a
person can read; ``str(error)`` is one line fit for a CLI.
"""

from __future__ import annotations

from mcptool.errors import McptoolError


class FrameError(McptoolError, ValueError):
    """Bytes that are not a valid MCP frame (or message payload, or envelope)."""

    def __init__(self, reason: str, offset: int = 0) -> None:
        super().__init__(f"frame at offset {offset}: {reason}")
        self.reason = reason
        self.offset = offset


class BadMagic(FrameError):
    """The first byte of a header is not 0x5A: garbage, or a stream out of step."""


class UnsupportedVersion(FrameError):
    """The header names a protocol version this decoder does not speak."""


class UnknownType(FrameError):
    """The header names a message type this version does not define."""


class FrameTooLarge(FrameError):
    """The length field exceeds the configured maximum frame length."""


class TruncatedFrame(FrameError):
    """Fewer bytes than the header (or its length field) promises."""


class TrailingBytes(FrameError):
    """Bytes left after a frame where exactly one frame was expected."""


class PayloadError(FrameError):
    """A well-framed message whose payload is wrong: the reason alone says it all."""

    def __str__(self) -> str:
        return self.reason


class BadPayload(PayloadError):
    """A frame whose payload does not have the layout its message type requires."""


class EnvelopeError(PayloadError):
    """A REQUEST/RESPONSE payload that is not a valid JSON envelope."""
