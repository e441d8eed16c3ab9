"""Writes an agent may make: only to points the config marks writable, within their
bounds, each one logged as an audit line, whatever the agent asks.

The checks come before any byte is built: the device and point must exist, the point
must be ``writable = true`` in the config, the value a finite number (or a bool for a
bit) within ``[min, max]``. Only then is the request built by the function entries of
the Modbus core (0x05 for a coil, 0x06 for one register, 0x10 for several) and sent
over the write path's own connection (``modbus.write.WriteConnection``, whose guard
checks the whole PDU again). The value is encoded as the gateway decodes it: the
point's type and byte order, ``raw = (value - offset) / scale``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from mcptool.gateway.config import GatewayConfig
from mcptool.modbus.connection import Failure
from mcptool.modbus.datatypes import encode
from mcptool.modbus.functions import (
    WRITE_MULTIPLE_REGISTERS,
    WRITE_SINGLE_COIL,
    WRITE_SINGLE_REGISTER,
    exception_name,
)
from mcptool.modbus.poller import DeviceSpec
from mcptool.modbus.registermap import DataType, Point, Table
from mcptool.modbus.write import WriteConnection

__all__ = ["Refused", "WriteOutcome", "Writer"]

audit_log = logging.getLogger("mcptool.context.audit")

_INT_RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}


class Refused(Exception):
    """A write that was not sent: the message says why and what would be allowed."""


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    device: str
    point: str
    value: float | bool
    function: int
    registers: tuple[int, ...]  # what went on the wire (a coil: 1 or 0)
    response_ms: float


class Writer:
    """The one door for writes: ``await writer.write(device, point, value)``."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        audit: Callable[[dict[str, object]], None] | None = None,
        client: str = "context",
    ) -> None:
        self.config = config
        self.devices = {spec.name: spec for spec in config.devices}
        self.audit = audit
        self.client = client

    def _log(self, entry: dict[str, object]) -> None:
        entry = {"ts": round(time.time(), 3), "client": self.client, **entry}
        audit_log.warning("audit %s", json.dumps(entry, ensure_ascii=False, sort_keys=True))
        if self.audit is not None:
            self.audit(entry)

    async def write(self, device: str, point: str, value: object) -> WriteOutcome:
        try:
            spec, _target, pdu, registers, typed = self._plan(device, point, value)
        except Refused as exc:
            self._log(
                {
                    "device": device,
                    "point": point,
                    "value": _shown(value),
                    "result": "refused",
                    "reason": str(exc),
                }
            )
            raise
        connection = await WriteConnection.open(
            spec.host, spec.port, connect_timeout=spec.connect_timeout
        )
        if isinstance(connection, Failure):
            reason = f"{spec.name} at {spec.host}:{spec.port}: {connection.reason}"
            self._log(
                {
                    "device": device,
                    "point": point,
                    "value": typed,
                    "result": "failed",
                    "reason": reason,
                }
            )
            raise Refused(f"not written: {reason}; check that the device is online")
        try:
            reply, ms = await connection.exchange(spec.unit, pdu, timeout=spec.timeout)
        finally:
            connection.close()
        if isinstance(reply, Failure) or reply.exception_code is not None:
            if isinstance(reply, Failure):
                reason = reply.reason
            else:
                code = reply.exception_code or 0
                reason = f"exception {code:#04x} {exception_name(code)}"
            self._log(
                {
                    "device": device,
                    "point": point,
                    "value": typed,
                    "result": "failed",
                    "reason": reason,
                }
            )
            raise Refused(f"{device}.{point}: the device did not take the write ({reason})")
        self._log(
            {
                "device": device,
                "point": point,
                "value": typed,
                "result": "written",
                "function": pdu[0],
                "registers": list(registers),
            }
        )
        return WriteOutcome(device, point, typed, pdu[0], registers, round(ms, 3))

    def _plan(
        self, device: str, point: str, value: object
    ) -> tuple[DeviceSpec, Point, bytes, tuple[int, ...], float | bool]:
        spec = self.devices.get(device)
        if spec is None:
            known = ", ".join(self.devices)
            raise Refused(f'unknown device "{device}": one of {known}')
        target = next((p for p in spec.points if p.name == point), None)
        if target is None:
            known = ", ".join(p.name for p in spec.points)
            raise Refused(f'device {device} has no point "{point}": one of {known}')
        info = self.config.info(device, point)
        if not info.writable:
            allowed = [p.name for p in spec.points if self.config.info(device, p.name).writable]
            which = ", ".join(allowed) if allowed else "none of its points"
            raise Refused(
                f"{device}.{point} is not writable: the config allows writes to {which}"
                " (writable = true with min and max on the point)"
            )
        if target.type is DataType.BOOL:
            if not isinstance(value, bool) and value not in (0, 1):
                raise Refused(f"{device}.{point} is a bool: write true or false, not {value!r}")
            bit = bool(value)
            if target.table is not Table.COIL:
                raise Refused(f"{device}.{point}: a bit inside a register cannot be written alone")
            return spec, target, WRITE_SINGLE_COIL.request(target.address, bit), (int(bit),), bit
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Refused(f"{device}.{point} takes a number, not {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise Refused(f"{device}.{point}: {value} is not a finite number")
        low, high = info.min, info.max
        if low is None or high is None or not low <= number <= high:
            raise Refused(
                f"{device}.{point} = {_shown(value)} is out of bounds: the config allows"
                f" {low} to {high} {target.unit}".rstrip()
            )
        raw: float | int = (number - target.offset) / target.scale
        if target.type in _INT_RANGES:
            rounded = round(raw)
            lo, hi = _INT_RANGES[target.type]
            if not lo <= rounded <= hi:
                raise Refused(f"{device}.{point}: {number} does not fit {target.type.value}")
            raw = rounded
        registers = tuple(encode(raw, target.type.value, target.order.value))
        if len(registers) == 1:
            pdu = WRITE_SINGLE_REGISTER.request(target.address, registers[0])
        else:
            pdu = WRITE_MULTIPLE_REGISTERS.request(target.address, registers)
        return spec, target, pdu, registers, number


def _shown(value: object) -> object:
    return value if isinstance(value, bool | int | float | str) or value is None else repr(value)
