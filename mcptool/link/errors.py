"""Errors of the MCP link: what a user can cause (bad key, unreachable hub) and API misuse.

User-facing errors subclass :class:`~mcptool.errors.McptoolError`, so the CLI prints them
as one line; :class:`LinkStateError` is a bug in the caller (an illegal transition) and so
is a plain ``RuntimeError``.
"""

from __future__ import annotations

from mcptool.errors import McptoolError, UsageError


class LinkError(McptoolError):
    """Something went wrong on an MCP link."""


class AuthenticationFailed(LinkError):
    """The hub refused our key, or the hub could not prove it holds the key."""


class VersionMismatch(LinkError):
    """The two ends share no protocol version."""


class LinkClosed(LinkError):
    """The link is closed (or was closed while waiting): nothing more can be sent."""


class ConnectionLost(LinkError):
    """The connection dropped while a request was waiting for its response."""


class RequestTimeout(LinkError):
    """A request got no response within its deadline."""


class KeysFileError(UsageError):
    """A keys file that cannot be used: missing, unreadable, malformed or too open."""


class LinkStateError(RuntimeError):
    """An operation that the machine's current state does not allow: a caller's bug."""
