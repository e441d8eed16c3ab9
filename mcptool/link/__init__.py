"""The MCP link: an authenticated, heartbeat-managed session that loses nothing.

Sans-IO cores (:class:`ClientConnection`, :class:`ServerConnection`) hold every protocol
rule and timer; :class:`LinkClient` and :class:`LinkServer` put them on asyncio sockets.
docs/LINK.md is the user's guide and the exact authentication and delivery rules.
"""

from mcptool.link.admission import Admission, RefusalLog
from mcptool.link.auth import accept_proof, auth_mac, load_keys, load_secret
from mcptool.link.backoff import Backoff
from mcptool.link.client import LinkClient, LinkURL, parse_url
from mcptool.link.client_state import CLIENT_TRANSITIONS, ClientConnection, ClientState
from mcptool.link.codes import CloseCode, ErrorCode, RejectCode
from mcptool.link.delivery import JournalLedger, Ledger, MemoryLedger, Outbox, OutboxFull
from mcptool.link.errors import (
    AuthenticationFailed,
    ConnectionLost,
    KeysFileError,
    LinkClosed,
    LinkError,
    LinkStateError,
    RequestTimeout,
    VersionMismatch,
)
from mcptool.link.heartbeat import Heartbeat
from mcptool.link.router import Handler, HandlerError, Router
from mcptool.link.server import LinkServer, ServerStats
from mcptool.link.server_state import SERVER_TRANSITIONS, ServerConnection, ServerState

__all__ = [
    "CLIENT_TRANSITIONS",
    "SERVER_TRANSITIONS",
    "Admission",
    "AuthenticationFailed",
    "Backoff",
    "ClientConnection",
    "ClientState",
    "CloseCode",
    "ConnectionLost",
    "ErrorCode",
    "Handler",
    "HandlerError",
    "Heartbeat",
    "JournalLedger",
    "KeysFileError",
    "Ledger",
    "LinkClient",
    "LinkClosed",
    "LinkError",
    "LinkServer",
    "LinkStateError",
    "LinkURL",
    "MemoryLedger",
    "Outbox",
    "OutboxFull",
    "RefusalLog",
    "RejectCode",
    "RequestTimeout",
    "Router",
    "ServerConnection",
    "ServerState",
    "ServerStats",
    "VersionMismatch",
    "accept_proof",
    "auth_mac",
    "load_keys",
    "load_secret",
    "parse_url",
]
