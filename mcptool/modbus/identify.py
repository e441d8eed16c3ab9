"""Device identification over an open connection: 0x2B/0x0E objects and 0x11 server id.

Both are reads by the specification. Object lists are followed across "more follows"
replies; a device that does not implement a function answers with an exception, which
is recorded rather than treated as a failure of the probe.
"""

from __future__ import annotations

from typing import Final

from mcptool.modbus.connection import Failure, ModbusConnection
from mcptool.modbus.functions import (
    READ_DEVICE_IDENTIFICATION,
    REPORT_SERVER_ID,
    PduError,
    exception_name,
)
from mcptool.modbus.probe import Identity

BASIC, REGULAR = 0x01, 0x02
_MAX_ROUNDS: Final = 32  # a device that keeps saying "more follows" cannot hold a scan


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace").rstrip("\x00")


async def _read_objects(
    connection: ModbusConnection, unit: int, read_code: int, timeout: float
) -> tuple[dict[int, str], int | None, str | None]:
    """Objects of one read code, following "more follows"; and an error text if any."""
    objects: dict[int, str] = {}
    conformity: int | None = None
    object_id = 0
    for _ in range(_MAX_ROUNDS):
        reply, _ms = await connection.exchange(
            unit, READ_DEVICE_IDENTIFICATION.request(read_code, object_id), timeout=timeout
        )
        if isinstance(reply, Failure):
            return objects, conformity, f"identification: {reply.outcome.value}: {reply.reason}"
        if reply.exception_code is not None:
            code = reply.exception_code
            return (
                objects,
                conformity,
                f"identification: exception {code:#04x} {exception_name(code)}",
            )
        try:
            decoded = READ_DEVICE_IDENTIFICATION.parse_response(reply.pdu)
        except PduError:
            return objects, conformity, "identification: reply could not be decoded"
        conformity = decoded.conformity
        texts: dict[int, list[str]] = {}
        for key, value in decoded.objects:  # an object too long for one reply may repeat
            texts.setdefault(key, []).append(_text(value))
        objects.update((key, " ".join(parts)) for key, parts in texts.items())
        if not decoded.more_follows:
            return objects, conformity, None
        if decoded.next_object_id <= object_id:
            return objects, conformity, "identification: 'more follows' without progress"
        object_id = decoded.next_object_id
    return objects, conformity, f"identification: still 'more follows' after {_MAX_ROUNDS} reads"


def _server_id(pdu: bytes) -> tuple[str, bool | None] | str:
    """Server id text and run indicator of a 0x11 reply, or an error text.

    Parsed here rather than by pymodbus's ReportDeviceIdResponse, which takes the *last*
    byte as the run indicator: the specification puts it right after the device-specific
    server id, and additional data follows (most devices: a one-byte id, 0x00/0xFF, text).
    """
    try:
        data = REPORT_SERVER_ID.parse_response(pdu)
    except PduError:
        return f"server id: byte count does not match the reply ({pdu.hex(' ')})"
    if len(data) >= 2 and data[1] in (0x00, 0xFF):
        extra = _text(data[2:]).strip()
        text = f"{data[0]:#04x}" + (f" {extra}" if extra else "")
        return text, data[1] == 0xFF
    return data.hex(" "), None


async def identify(connection: ModbusConnection, unit: int, *, timeout: float) -> Identity:
    """Ask ``unit`` who it is: basic and regular identification objects, then server id."""
    errors: list[str] = []
    objects, conformity, error = await _read_objects(connection, unit, BASIC, timeout)
    if error:
        errors.append(error)
    elif conformity is not None and conformity & 0x7F >= REGULAR:
        more, _, error = await _read_objects(connection, unit, REGULAR, timeout)
        objects.update(more)
        if error:
            errors.append(error.replace("identification", "regular identification"))
    server_id: str | None = None
    running: bool | None = None
    if connection.usable:
        reply, _ms = await connection.exchange(unit, REPORT_SERVER_ID.request(), timeout=timeout)
        if isinstance(reply, Failure):
            errors.append(f"server id: {reply.outcome.value}: {reply.reason}")
        elif reply.exception_code is not None:
            code = reply.exception_code
            errors.append(f"server id: exception {code:#04x} {exception_name(code)}")
        else:
            parsed = _server_id(reply.pdu)
            if isinstance(parsed, str):
                errors.append(parsed)
            else:
                server_id, running = parsed
    return Identity(objects, conformity, server_id, running, tuple(errors))
