"""Read every point of a device once, judge each value, and suggest a word order that fits.

What ``mcptool gateway check --live`` runs per device: one read-only connection, one
read per point (so a bad address spoils only its own point), the value decoded as the
config says, its quality (``ok``, ``implausible: ...``, or the read's error) and, for an
implausible multi-register value, the word orders under which the same registers make
sense (``plausibility``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from mcptool.errors import McptoolError
from mcptool.modbus.client import Endpoint, open_endpoint
from mcptool.modbus.connection import Failure, ModbusConnection
from mcptool.modbus.datatypes import Value
from mcptool.modbus.functions import exception_name
from mcptool.modbus.plausibility import Suggestion, judge, suggest_orders
from mcptool.modbus.poller import DeviceSpec
from mcptool.modbus.registermap import Point, plan_reads
from mcptool.modbus.timeouts import Timeouts

__all__ = ["PointCheck", "check_device"]


@dataclass(frozen=True, slots=True)
class PointCheck:
    """One point read once: its value, quality, and orders that would make it plausible."""

    device: str
    point: Point
    value: Value | None
    quality: str
    suggestions: list[Suggestion] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.quality == "ok"

    def advice(self) -> str:
        if not self.suggestions:
            return ""
        best = self.suggestions[0]
        shown = f"{best.value:.6g}" if isinstance(best.value, float) else str(best.value)
        return f'try order = "{best.order}" (reads {shown} {self.point.unit})'.replace(" )", ")")


async def check_device(spec: DeviceSpec, timeouts: Timeouts) -> list[PointCheck]:
    """Each point of ``spec`` read once; a device that cannot be reached fails every point."""
    try:
        connection = await open_endpoint(Endpoint(spec.host, spec.port), timeouts)
    except McptoolError as exc:  # unreachable, refused, a name that does not resolve
        return [PointCheck(spec.name, p, None, f"error: {exc}") for p in spec.points]
    checks: list[PointCheck] = []
    try:
        for point in spec.points:
            checks.append(await _check_point(connection, spec, point, timeouts.response))
    finally:
        connection.close()
    return checks


async def _check_point(
    connection: ModbusConnection, spec: DeviceSpec, point: Point, timeout: float
) -> PointCheck:
    (request,) = plan_reads([point])
    reply, _ = await connection.exchange(spec.unit, request.pdu, timeout=timeout)
    if isinstance(reply, Failure):
        return PointCheck(spec.name, point, None, f"error: {reply.outcome.value}: {reply.reason}")
    code = reply.exception_code
    if code is not None:
        why = f"error: exception {code:#04x}: {exception_name(code)}"
        return PointCheck(spec.name, point, None, why)
    data = reply.pdu[2:]
    (value,) = request.decode(data)
    why = judge(value, point.type.value, point.unit)
    if why is None:
        return PointCheck(spec.name, point, value, "ok")
    suggestions: list[Suggestion] = []
    if not point.table.is_bits and len(data) >= 2 * point.width:
        registers = struct.unpack(f">{point.width}H", data[: 2 * point.width])
        suggestions = suggest_orders(
            registers, point.type.value, point.order.value,
            unit=point.unit, scale=point.scale, offset=point.offset,
        )  # fmt: skip
    return PointCheck(spec.name, point, value, f"implausible: {why}", suggestions)
