"""A write a person can trust: the old value read first, the write, a read-back that confirms.

``read_before`` reads the span a ``WritePlan`` will change; ``apply`` sends the write
and reads the span again; the ``WriteResult`` says whether the device now holds what
was written and renders the one audit line the command prints (target, unit, address,
old and new value). The request itself goes through ``WriteConnection`` (``write``).
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass

from mcptool.modbus.client import BlockRead, read_block
from mcptool.modbus.connection import Failure
from mcptool.modbus.datatypes import Value
from mcptool.modbus.functions import READ_WRITE_REGISTERS, exception_name
from mcptool.modbus.typed_read import ReadSpec
from mcptool.modbus.write import WriteBus, WriteConnection, WritePlan, masked

__all__ = ["WriteResult", "apply", "read_before"]


async def read_before(
    connection: WriteConnection | WriteBus, unit: int, plan: WritePlan, *, timeout: float
) -> BlockRead:
    """The span ``plan`` will change, as it is now (a mask write reads its one register)."""
    return await read_block(
        connection, unit, plan.table, plan.address, max(plan.count, 1), timeout=timeout
    )


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one write did, for the audit line and the exit code."""

    target: str
    unit: int
    spec: ReadSpec
    plan: WritePlan
    old: tuple[int, ...] | tuple[bool, ...] | None
    expected: tuple[int, ...] | tuple[bool, ...]
    read_back: tuple[int, ...] | tuple[bool, ...] | None
    error: str | None
    response_ms: float

    @property
    def confirmed(self) -> bool:
        return self.error is None and self.read_back == self.expected

    def _values(self, raw: tuple[int, ...] | tuple[bool, ...] | None) -> list[Value] | None:
        if raw is None or len(raw) != self.spec.size:
            return None
        return self.spec.decode(raw)

    def _json_values(
        self, raw: tuple[int, ...] | tuple[bool, ...] | None
    ) -> list[Value | None] | None:
        # NaN and the infinities are not JSON: null (the raw registers are beside them)
        values = self._values(raw)
        if values is None:
            return None
        return [None if isinstance(v, float) and not math.isfinite(v) else v for v in values]

    def _shown(self, raw: tuple[int, ...] | tuple[bool, ...] | None) -> str:
        values = self._values(raw)
        if values is None:
            return "?"
        return " ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values)

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return f"failed: {self.error}"
        if self.confirmed:
            return "confirmed"
        return f"NOT confirmed: read back {self._shown(self.read_back)}"

    def audit_line(self) -> str:
        """One line naming target, unit, address, old and new value, and the verdict."""
        address = self.spec.address
        kind = "" if address.table.is_bits else f" {self.spec.type} {self.spec.order}"
        return (
            f"write {self.target} unit {self.unit} {address.text} ({address.table.value} "
            f"{address.address}) fc {self.plan.function}{kind}: old {self._shown(self.old)} "
            f"-> new {self._shown(self.expected)}: {self.verdict}"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "target": self.target,
            "unit": self.unit,
            "address": self.spec.address.text,
            "table": self.spec.address.table.value,
            "register": self.spec.address.address,
            "function": self.plan.function,
            "type": self.spec.type,
            "order": self.spec.order,
            "old": self._json_values(self.old),
            "new": self._json_values(self.expected),
            "read_back": self._json_values(self.read_back),
            "old_raw": None if self.old is None else list(self.old),
            "new_raw": list(self.expected),
            "read_back_raw": None if self.read_back is None else list(self.read_back),
            "confirmed": self.confirmed,
            "error": self.error,
            "response_ms": round(self.response_ms, 3),
        }

    def json_line(self) -> str:
        return json.dumps(self.as_dict())


async def apply(
    connection: WriteConnection | WriteBus,
    target: str,
    unit: int,
    spec: ReadSpec,
    plan: WritePlan,
    old: BlockRead,
    *,
    timeout: float,
) -> WriteResult:
    """Send ``plan`` and read the span back; never raises for what the device answers."""
    expected = plan.expected
    if plan.masks is not None:  # what the register holds after a mask write depends on it
        expected = () if old.values is None else (masked(int(old.values[0]), *plan.masks),)

    def result(read_back: tuple[int, ...] | tuple[bool, ...] | None, error: str | None,
               ms: float) -> WriteResult:  # fmt: skip
        return WriteResult(target, unit, spec, plan, old.values, expected, read_back, error, ms)

    reply, ms = await connection.exchange(unit, plan.pdu, timeout=timeout)
    if isinstance(reply, Failure):
        return result(None, f"{reply.outcome.value}: {reply.reason}", ms)
    code = reply.exception_code
    if code is not None:
        return result(None, f"exception {code:#04x}: {exception_name(code)}", ms)
    if plan.function == 23:  # the reply carries the span read after the write
        return result(READ_WRITE_REGISTERS.parse_response(reply.pdu), None, ms)
    back = await read_block(
        connection, unit, plan.table, plan.address, max(len(expected), 1), timeout=timeout
    )
    if back.values is None:
        return result(None, f"written, but the read-back failed: {back.error}", ms)
    return result(back.values, None, ms)
