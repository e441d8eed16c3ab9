"""What a read-only client may send: the request shapes it builds, and the guard.

``check_read_only_pdu`` is the read-only guard, in one place: ``ModbusConnection``
calls it on every PDU before a byte goes out, whoever built the PDU (probe, scan,
identification, the poller, a library caller). It checks the *whole* PDU against the
function's entry in ``functions``: the function code reads, the PDU has exactly that
function's length, and every count is within its limit. A read followed by anything
(``03 0000 0001`` + a write frame) is refused, because a device that splits frames by
function-code length instead of the MBAP length would execute what follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from mcptool.errors import UsageError
from mcptool.modbus.functions import (
    EXCEPTION_NAMES,
    FUNCTIONS,
    GATEWAY_ABSENT_CODES,
    READ_DEVICE_IDENTIFICATION,
    REPORT_SERVER_ID,
    Function,
    PduError,
    ReadBits,
    ReadRegisters,
    exception_name,
)

__all__ = [
    "EXCEPTION_NAMES",
    "GATEWAY_ABSENT_CODES",
    "READ_FUNCTIONS",
    "ProbeRequest",
    "ReadOnlyError",
    "check_read_only",
    "check_read_only_pdu",
    "exception_name",
    "identification_request_pdu",
    "read_values",
    "report_server_id_pdu",
]

#: Plain table reads (what probe, scan and the poller read values with), from the registry.
READ_FUNCTIONS: Final[dict[int, str]] = {
    code: entry.name
    for code, entry in FUNCTIONS.items()
    if isinstance(entry, ReadBits | ReadRegisters)
}


class ReadOnlyError(UsageError):
    """A request that could write to a device, or is not a well-formed read, was refused."""


def check_read_only(function: int) -> None:
    """Refuse, before anything is sent, every function code that is not a plain read."""
    if function not in READ_FUNCTIONS:
        raise _refusal(function)


def _refusal(function: int) -> ReadOnlyError:
    entry = FUNCTIONS.get(function)
    if entry is not None and not entry.reads:
        return ReadOnlyError(
            f"function code {function} ({entry.name}) can change a device: mcptool only reads; "
            "use 1, 2, 3 or 4"
        )
    return ReadOnlyError(f"function code {function} is not a read: use 1, 2, 3 or 4")


# PDUs that passed the guard: a sweep sends the same few PDUs thousands of times.
_PASSED: dict[bytes, Function] = {}
_PASSED_MAX: Final = 1024


def check_read_only_pdu(pdu: bytes) -> Function:
    """The entry of a request PDU that only reads and is well formed; ``ReadOnlyError`` else.

    The last guard before the socket: whatever a caller builds, only complete, valid
    reads (1-4), Read Device Identification (0x2B/0x0E) and Report Server ID (0x11) go out.
    """
    if type(pdu) is not bytes:
        pdu = bytes(pdu)
    entry = _PASSED.get(pdu)
    if entry is not None and FUNCTIONS.get(pdu[0]) is entry:  # still the registered entry
        return entry
    if not pdu:
        raise ReadOnlyError("empty request PDU: nothing was sent")
    entry = FUNCTIONS.get(pdu[0])
    if entry is None or not entry.reads:
        raise _refusal(pdu[0])
    try:
        entry.parse_request(pdu)
    except PduError as exc:
        raise ReadOnlyError(
            f"request PDU {pdu[:16].hex(' ')}{' ...' if len(pdu) > 16 else ''} refused "
            f"({entry.name}: {exc.reason}): nothing was sent"
        ) from None
    if len(_PASSED) >= _PASSED_MAX:
        _PASSED.clear()
    _PASSED[pdu] = entry
    return entry


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """One read request shape: function, address and count, encoded once."""

    function: int = 3
    address: int = 0
    count: int = 1
    pdu: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_read_only(self.function)
        entry = FUNCTIONS[self.function]
        assert isinstance(entry, ReadBits | ReadRegisters)
        if not 0 <= self.address <= 0xFFFF:
            raise UsageError(f"address {self.address} is out of range: use 0-65535")
        limit = entry.max_count
        if not 1 <= self.count <= limit:
            raise UsageError(
                f"count {self.count} is out of range for function {self.function}: use 1-{limit}"
            )
        if self.address + self.count > 0x10000:
            raise UsageError(
                f"address {self.address} + count {self.count} runs past register 65535"
            )
        object.__setattr__(self, "pdu", entry.request(self.address, self.count))

    @property
    def entry(self) -> ReadBits | ReadRegisters:
        entry = FUNCTIONS[self.function]
        assert isinstance(entry, ReadBits | ReadRegisters)
        return entry


def identification_request_pdu(read_code: int, object_id: int) -> bytes:
    """PDU of a Read Device Identification request (0x2B / MEI 0x0E)."""
    return READ_DEVICE_IDENTIFICATION.request(read_code, object_id)


def report_server_id_pdu() -> bytes:
    """PDU of a Report Server ID request (0x11)."""
    return REPORT_SERVER_ID.request()


def read_values(request: ProbeRequest, pdu: bytes) -> tuple[int, ...] | tuple[bool, ...]:
    """Register values or bits of a checked normal reply to ``request``."""
    entry = request.entry
    if isinstance(entry, ReadRegisters):
        return entry.parse_response(pdu)
    return entry.parse_response(pdu, request.count)
