"""The current values: the latest reading of every point, for readers that want "now".

The spool is a queue of what is still to be delivered; it is the wrong place to ask what
a point reads now (a delivered reading is gone from it, an undelivered one is buried in
JSON). ``CurrentValues`` keeps, per device, the last poll the poller produced and its
first sequence number; a read turns it into ``CurrentValue``s (value, quality,
timestamp, sequence number, unit, error). The context server (Model Context Protocol),
an OPC UA server or a dashboard read it in-process through ``Gateway.current``.

Keeping costs one dictionary store per poll, whatever the number of points: the values
are taken apart only when someone reads them. A poll result is never changed after the
poller made it, so keeping a reference to it is safe.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mcptool.modbus.poller import DeviceSpec, PollResult
from mcptool.modbus.registermap import Value

__all__ = ["CurrentValue", "CurrentValues"]

GOOD = "good"
BAD = "bad"


@dataclass(frozen=True, slots=True)
class CurrentValue:
    """The latest reading of one point; ``value`` is None when ``quality`` is bad."""

    device: str
    point: str
    value: Value | None
    quality: str  # "good" or "bad", as in the telemetry message
    ts: float  # Unix seconds of the poll that read it
    seq: int  # its sequence number in the device's telemetry
    unit: str = ""
    error: str = ""  # why it is bad

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "device": self.device,
            "point": self.point,
            "value": self.value,
            "quality": self.quality,
            "ts": round(self.ts, 3),
            "seq": self.seq,
        }
        if self.unit:
            out["unit"] = self.unit
        if self.error:
            out["error"] = self.error
        return out


class CurrentValues:
    """The latest reading of each point of ``devices`` (none until a device was polled)."""

    def __init__(self, devices: Iterable[DeviceSpec]) -> None:
        self._points = {d.name: {p.name: i for i, p in enumerate(d.points)} for d in devices}
        self._latest: dict[str, tuple[PollResult, int]] = {}

    def update(self, result: PollResult, seq_first: int) -> None:
        """A poll of ``result.device`` whose first reading got ``seq_first``."""
        self._latest[result.device] = (result, seq_first)

    def devices(self) -> list[str]:
        """Every device configured, polled yet or not."""
        return list(self._points)

    def points(self, device: str) -> list[str]:
        """``device``'s points in config order; ``KeyError`` for an unknown device."""
        return list(self._points[device])

    def get(self, device: str, point: str) -> CurrentValue | None:
        """The latest reading of ``point``, None if ``device`` was not polled yet;
        ``KeyError`` for a device or point that is not configured."""
        index = self._points[device][point]
        latest = self._latest.get(device)
        return None if latest is None else _value(*latest, index)

    def device(self, device: str) -> list[CurrentValue]:
        """The latest reading of each of ``device``'s points (empty before its first poll)."""
        if device not in self._points:
            raise KeyError(device)
        latest = self._latest.get(device)
        if latest is None:
            return []
        return [_value(*latest, i) for i in range(len(latest[0].points))]

    def __iter__(self) -> Iterator[CurrentValue]:
        """Every point's latest reading, device by device."""
        for device in self._points:
            yield from self.device(device)


def _value(result: PollResult, seq_first: int, i: int) -> CurrentValue:
    point = result.points[i]
    error = result.errors.get(i, "") if result.errors else ""
    value = result.values[i]
    if not error and isinstance(value, float) and not math.isfinite(value):
        error = f"not a finite number ({value})"  # as the telemetry message says
    bad = bool(error) or value is None
    return CurrentValue(
        device=result.device,
        point=point.name,
        value=None if bad else value,
        quality=BAD if bad else GOOD,
        ts=result.timestamp,
        seq=seq_first + i,
        unit=point.unit,
        error=error or ("no value" if bad else ""),
    )
