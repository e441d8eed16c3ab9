"""One classification of what can go wrong talking Modbus, and its two views.

Every failure is classified once, here, into a ``Cause``. Probe and scan report it as
an ``Outcome`` (what a user acts on: a connect that timed out and an unreachable host
are one answer, "unreachable"); the poller counts it as an ``ErrorKind`` (a gateway
operator's view: a connect timeout is told apart, a peer that closed and one that
reset are both "reset", and an exception reply that refuses a point is
``illegal_address``). Both views are columns of the one table below, so they cannot
drift apart.
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass
from typing import Final

from mcptool.modbus.mbap import MalformedField


class Outcome(enum.StrEnum):
    """What happened to one probe, one class per cause a user acts on differently."""

    OK = "ok"  # a normal reply with the values
    EXCEPTION = "exception"  # a Modbus exception reply (code and name)
    TIMEOUT = "timeout"  # connected, no reply before the deadline
    REFUSED = "refused"  # nothing listens: the host answered the connect with a reset
    UNREACHABLE = "unreachable"  # the connect timed out, or no route to the host
    CLOSED = "closed"  # the peer closed the connection (FIN) without a reply
    RESET = "reset"  # the peer reset the connection (RST) without a reply
    MALFORMED = "malformed"  # bytes came back, but not a valid Modbus/TCP reply


class ErrorKind(enum.StrEnum):
    """The poller's counters and device status (metrics labels: do not rename)."""

    REFUSED = "refused"
    CONNECT_TIMEOUT = "connect_timeout"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    RESET = "reset"
    MALFORMED = "malformed"
    EXCEPTION = "exception"
    ILLEGAL_ADDRESS = "illegal_address"


class Cause(enum.Enum):
    """Why a connect or an exchange produced no answer: (probe outcome, poller kind)."""

    REFUSED = (Outcome.REFUSED, ErrorKind.REFUSED)
    CONNECT_TIMEOUT = (Outcome.UNREACHABLE, ErrorKind.CONNECT_TIMEOUT)
    UNREACHABLE = (Outcome.UNREACHABLE, ErrorKind.UNREACHABLE)
    TIMEOUT = (Outcome.TIMEOUT, ErrorKind.TIMEOUT)
    CLOSED = (Outcome.CLOSED, ErrorKind.RESET)
    RESET = (Outcome.RESET, ErrorKind.RESET)
    MALFORMED = (Outcome.MALFORMED, ErrorKind.MALFORMED)

    @property
    def outcome(self) -> Outcome:
        return self.value[0]

    @property
    def kind(self) -> ErrorKind:
        return self.value[1]


#: Exception codes that refuse the addressed points, not the device (0x02, 0x03).
REFUSED_POINT_CODES: Final = frozenset({0x02, 0x03})


def exception_kind(code: int) -> ErrorKind:
    """The poller's kind for an exception reply with ``code``."""
    return ErrorKind.ILLEGAL_ADDRESS if code in REFUSED_POINT_CODES else ErrorKind.EXCEPTION


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a connect or an exchange produced no answer."""

    cause: Cause
    reason: str
    malformed: MalformedField | None = None

    @property
    def outcome(self) -> Outcome:
        return self.cause.outcome

    @property
    def kind(self) -> ErrorKind:
        return self.cause.kind


_UNREACHABLE_ERRNOS: Final = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.ETIMEDOUT}
)
RESET_ERRNOS: Final = frozenset({errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE})


def classify_connect_error(exc: BaseException) -> Failure:
    """Map a connect error to refused / connect timeout / unreachable / reset."""
    if isinstance(exc, TimeoutError):
        return Failure(Cause.CONNECT_TIMEOUT, "connect timed out: no answer to the connect request")
    if isinstance(exc, ConnectionRefusedError):
        return Failure(Cause.REFUSED, "connection refused: nothing listens on that port")
    if isinstance(exc, OSError) and exc.errno in RESET_ERRNOS:
        return Failure(Cause.RESET, f"connection reset during connect ({exc.strerror})")
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS:
        return Failure(Cause.UNREACHABLE, f"{exc.strerror or exc}")
    if isinstance(exc, OSError):
        return Failure(Cause.UNREACHABLE, f"connect failed: {exc.strerror or exc}")
    raise exc
