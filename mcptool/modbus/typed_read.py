"""Typed reads of one device: what to read, how to decode it, and response-time statistics.

``ReadSpec`` is the user's question ("three float32 from 40001, word order CDAB, times
0.1"): it knows the block to read and how to cut it into values with the gateway's
codecs (``datatypes``). ``read_sample`` asks the device once; ``ResponseStats`` keeps
the numbers a continuous poll ends with. No printing here; ``commands/read.py`` prints.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from mcptool.errors import UsageError
from mcptool.modbus.client import Link, read_block
from mcptool.modbus.datatypes import Value, codec, normalize_order, normalize_type
from mcptool.modbus.modicon import Address
from mcptool.modbus.registermap import MAX_READ_BITS, MAX_READ_REGISTERS

__all__ = ["ReadSpec", "ResponseStats", "Sample", "read_sample"]


@dataclass(frozen=True, slots=True)
class ReadSpec:
    """``count`` values of ``type`` from ``address`` in ``order``, each times ``scale``."""

    address: Address
    type: str = "uint16"
    order: str = "ABCD"
    scale: float = 1.0
    count: int = 1
    #: Registers per string value.
    length: int | None = None

    def __post_init__(self) -> None:
        kind = normalize_type(self.type)
        if self.address.table.is_bits:
            if kind not in ("bool", "uint16"):
                raise UsageError(
                    f"{self.address.text}: coils and discrete inputs are bits; "
                    f"--type {kind} needs registers (30001 or 40001)"
                )
            kind = "bool"
        object.__setattr__(self, "type", kind)
        object.__setattr__(self, "order", normalize_order(self.order))
        if kind == "string" and not self.length:
            raise UsageError("--type string needs --length N (registers per string)")
        if not (math.isfinite(self.scale) and self.scale != 0):
            raise UsageError(f"--scale {self.scale} must be a finite number other than 0")
        if self.count < 1:
            raise UsageError(f"--count {self.count} must be at least 1")
        limit = MAX_READ_BITS if self.address.table.is_bits else MAX_READ_REGISTERS
        if self.size > limit:
            raise UsageError(
                f"{self.count} x {kind} is {self.size} "
                f"{'bits' if self.address.table.is_bits else 'registers'}, more than one "
                f"read carries ({limit}): lower --count"
            )
        if self.address.address + self.size > 0x10000:
            raise UsageError(f"{self.size} from {self.address.text} run past address 65535")

    @property
    def width(self) -> int:
        """Registers (or bits) per value."""
        if self.address.table.is_bits:
            return 1
        return codec(self.type, self.order, self.length).count

    @property
    def size(self) -> int:
        return self.width * self.count

    def labels(self) -> list[str]:
        """Each value's address in the user's own notation."""
        return [self.address.label(i * self.width) for i in range(self.count)]

    def decode(self, raw: tuple[int, ...] | tuple[bool, ...]) -> list[Value]:
        if self.address.table.is_bits:
            return [bool(bit) for bit in raw]
        one = codec(self.type, self.order, self.length)
        values: list[Value] = []
        for i in range(self.count):
            value = one.decode(raw[i * self.width : (i + 1) * self.width])
            if self.scale != 1.0 and self.type not in ("bool", "string"):
                value = value * self.scale  # type: ignore[operator]
            values.append(value)
        return values


@dataclass(frozen=True, slots=True)
class Sample:
    """One read: when, the values (or why none), the raw registers, the response time."""

    time: float
    values: list[Value] | None
    raw: tuple[int, ...] | tuple[bool, ...] | None
    error: str | None
    response_ms: float
    exception_code: int | None = None


async def read_sample(connection: Link, unit: int, spec: ReadSpec, *, timeout: float) -> Sample:
    """Read ``spec`` once from ``unit``."""
    at = time.time()
    block = await read_block(
        connection, unit, spec.address.table, spec.address.address, spec.size, timeout=timeout
    )
    if block.values is None:
        return Sample(at, None, None, block.error, block.response_ms, block.exception_code)
    return Sample(at, spec.decode(block.values), block.values, None, block.response_ms)


@dataclass(slots=True)
class ResponseStats:
    """Response times of a run, and how many reads failed."""

    times: list[float] = field(default_factory=list)
    failed: int = 0

    def add(self, sample: Sample) -> None:
        if sample.values is None:
            self.failed += 1
        else:
            self.times.append(sample.response_ms)

    def as_dict(self) -> dict[str, float | int | None]:
        times = sorted(self.times)
        if not times:
            return {"reads": self.failed, "failed": self.failed}
        return {
            "reads": len(times) + self.failed,
            "failed": self.failed,
            "min_ms": round(times[0], 3),
            "mean_ms": round(sum(times) / len(times), 3),
            "p95_ms": round(times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)], 3),
            "max_ms": round(times[-1], 3),
        }

    def line(self) -> str:
        d = self.as_dict()
        if "min_ms" not in d:
            return f"{d['reads']} reads, all failed"
        return (
            f"{d['reads']} reads, {d['failed']} failed; response ms min {d['min_ms']:.3f} "
            f"mean {d['mean_ms']:.3f} p95 {d['p95_ms']:.3f} max {d['max_ms']:.3f}"
        )
