"""Windowed statistics per point, updated in O(1) per reading.

The hot path is ``DeviceWindow.add``: a gateway feeds it every reading, so its per-reading
work is a handful of float operations on ``__slots__`` attributes, inlined in one loop
(no method call per reading). Mean and variance use Welford's update (numerically stable,
no stored series); the rate of change is the least-squares slope over the window, from
running sums of time offsets, so it is robust to noise at the window's ends. Everything
else (std, slope, the snapshot) is computed once, when the window closes.

Values that are not numbers (strings, ``None`` for a failed read) are counted apart and
never reach the arithmetic; ``bool`` is a number (0/1) here, like in Python.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DeviceWindow", "PointStats", "WindowStats"]

_INF = math.inf


@dataclass(frozen=True, slots=True)
class PointStats:
    """One point over one window. ``rate_per_s`` is the least-squares slope (unit/s)."""

    name: str
    count: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    rate_per_s: float | None
    last: Any
    gaps: int
    unit: str = ""
    discrete: bool = False
    missing: int = 0
    # readings that differed from the one before (a live analog signal: nearly all; a
    # slow register quantised to 0.1: a few); what "stuck" must be judged against
    changes: int = 0
    # spread of the readings about the trend line: the noise, without the slope (a smooth
    # sine has a large spread on its flanks and none at its crest, but no noise anywhere)
    noise: float | None = None
    # the trend's standard error: a slope within two of it is noise, not a trend
    rate_se: float | None = None

    @property
    def varied(self) -> bool:
        return self.count > 1 and self.max is not None and self.max != self.min

    @property
    def trend_significant(self) -> bool:
        """The slope is at least twice its standard error (about 95 % that it is real)."""
        if self.rate_per_s is None or self.rate_se is None:
            return False
        return abs(self.rate_per_s) >= 2 * self.rate_se

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": self.std,
            "rate_per_s": self.rate_per_s,
            "last": self.last,
            "gaps": self.gaps,
            "missing": self.missing,
        }


@dataclass(frozen=True, slots=True)
class WindowStats:
    """A closed window of one device: ``[start, end)`` in Unix seconds."""

    device: str
    start: float
    end: float
    points: dict[str, PointStats] = field(default_factory=dict)
    readings: int = 0
    failed_polls: int = 0
    last_seen: float | None = None
    # closed before its end (the analysis stopping): its readings are judged against the
    # thresholds, but a part of a window is no sample of the point's usual behaviour (a
    # few readings at a sine's crest have neither its mean nor its noise)
    partial: bool = False

    @property
    def seconds(self) -> float:
        return self.end - self.start


class _Point:
    """Running sums of one point in the open window (mutable, slots: this is the hot path)."""

    __slots__ = (
        "changes",
        "discrete",
        "gaps",
        "hi",
        "last",
        "lo",
        "m2",
        "mean",
        "missing",
        "n",
        "name",
        "st",
        "stt",
        "stv",
        "tl",
    )

    def __init__(self, name: str, discrete: bool) -> None:
        self.name = name
        self.discrete = discrete
        self.tl: float | None = None  # time of the last reading, kept across windows
        self.last: Any = None
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.lo = _INF
        self.hi = -_INF
        self.st = 0.0
        self.stt = 0.0
        self.stv = 0.0
        self.gaps = 0
        self.missing = 0
        self.changes = 0

    def snapshot(self, unit: str) -> PointStats:
        n = self.n
        if n == 0:
            return PointStats(
                self.name,
                0,
                None,
                None,
                None,
                None,
                None,
                self.last,
                self.gaps,
                unit,
                self.discrete,
                self.missing,
            )
        std = math.sqrt(self.m2 / (n - 1)) if n > 1 else 0.0
        denominator = n * self.stt - self.st * self.st
        rate = noise = rate_se = None
        if n > 1 and denominator > 1e-12:
            rate = (n * self.stv - self.st * self.mean * n) / denominator
            spread_t = denominator / n  # sum of squared time offsets from their mean
            if n > 2:
                residual = max(0.0, self.m2 - rate * rate * spread_t)
                noise = math.sqrt(residual / (n - 2))
                rate_se = noise / math.sqrt(spread_t)
        return PointStats(
            self.name,
            n,
            float(self.lo),
            float(self.hi),
            self.mean,
            std,
            rate,
            self.last,
            self.gaps,
            unit,
            self.discrete,
            self.missing,
            self.changes,
            noise,
            rate_se,
        )


class DeviceWindow:
    """The open window of one device; windows are aligned to multiples of ``window_s``.

    ``add`` returns the window it closed when a reading belongs to a later window, so a
    caller never needs a clock for devices that keep answering; ``close_if_due`` closes a
    window of a device that went silent.
    """

    __slots__ = (
        "device",
        "end",
        "failed",
        "gap_s",
        "last_seen",
        "points",
        "readings",
        "start",
        "units",
        "window_s",
    )

    def __init__(
        self,
        device: str,
        window_s: float,
        gap_s: float,
        units: Mapping[str, str] | None = None,
        discrete: Mapping[str, bool] | None = None,
    ) -> None:
        self.device = device
        self.window_s = window_s
        self.gap_s = gap_s
        self.units: dict[str, str] = dict(units or {})
        self.points: dict[str, _Point] = {}
        for name, is_bits in (discrete or {}).items():
            self.points[name] = _Point(name, is_bits)
        self.start = -_INF
        self.end = -_INF  # no window open: the first reading opens one
        self.readings = 0
        self.failed = 0
        self.last_seen: float | None = None

    @property
    def is_open(self) -> bool:
        return self.end != -_INF

    def _open(self, t: float) -> None:
        self.start = math.floor(t / self.window_s) * self.window_s
        self.end = self.start + self.window_s

    def add(self, t: float, values: Mapping[str, Any]) -> WindowStats | None:
        """Take one poll's values (point name -> value) read at Unix time ``t``."""
        closed = None
        if t >= self.end:
            if self.end != -_INF:
                closed = self.close()
            self._open(t)
        rel = t - self.start
        points = self.points
        gap = self.gap_s
        for name, v in values.items():
            p = points.get(name)
            if p is None:
                p = points[name] = _Point(name, type(v) is bool)
            try:
                d = v - p.mean  # TypeError for str / None: not a number
            except TypeError:
                if v is None:
                    p.missing += 1
                else:
                    p.last = v
                continue
            n = p.n + 1
            p.n = n
            mean = p.mean + d / n
            p.mean = mean
            p.m2 += d * (v - mean)
            if v < p.lo:
                p.lo = v
            if v > p.hi:
                p.hi = v
            tl = p.tl
            if tl is not None and t - tl > gap:
                p.gaps += 1
            p.tl = t
            if v != p.last:
                p.changes += 1
            p.last = v
            p.st += rel
            p.stt += rel * rel
            p.stv += rel * v
        self.readings += len(values)
        self.last_seen = t
        return closed

    def to_json(self) -> dict[str, Any]:
        """What the device carries from one window to the next, as JSON: each point's last
        reading and its time (the next window's first reading is a change, or after a
        gap, against them) and whether it is discrete. Between windows only: an open
        window's sums are not in it (ValueError)."""
        if self.is_open:
            raise ValueError(f"{self.device}: a window is open; close it first")
        return {
            name: {"last": p.last, "t": p.tl, "discrete": p.discrete}
            for name, p in self.points.items()
        }

    def load_json(self, data: Any) -> None:
        """Carry on from ``data`` (of :meth:`to_json`); a point declared already keeps its
        own ``discrete``. ValueError, and nothing changed, for anything else."""
        if self.is_open:
            raise ValueError(f"{self.device}: a window is open; restore before reading")
        if not isinstance(data, Mapping):
            raise ValueError("the points are not an object")
        carried = []
        for name, point in data.items():
            if not isinstance(point, Mapping):
                raise ValueError(f"point {name!r} is not an object")
            t, last, discrete = point.get("t"), point.get("last"), point.get("discrete")
            if t is not None and (isinstance(t, bool) or not isinstance(t, int | float)):
                raise ValueError(f"point {name!r}: 't' is not a time")
            if not isinstance(discrete, bool):
                raise ValueError(f"point {name!r}: 'discrete' is not true or false")
            if isinstance(last, Mapping | list):
                raise ValueError(f"point {name!r}: 'last' is not a reading")
            carried.append((str(name), t, last, discrete))
        for name, t, last, discrete in carried:
            p = self.points.get(name)
            if p is None:
                p = self.points[name] = _Point(name, discrete)
            p.tl = t
            p.last = last

    def failed_poll(self, t: float) -> WindowStats | None:
        """A poll of the device failed at ``t`` (timeout, refused, exception)."""
        closed = None
        if t >= self.end:
            if self.end != -_INF:
                closed = self.close()
            self._open(t)
        self.failed += 1
        return closed

    def close_if_due(self, now: float, grace_s: float) -> WindowStats | None:
        """Close the open window when ``now`` is past its end by ``grace_s`` (late readings)."""
        if self.end != -_INF and now >= self.end + grace_s:
            return self.close_now(partial=False)
        return None

    def close_now(self, *, partial: bool = True) -> WindowStats | None:
        """Close the open window whatever the time (the analysis is stopping)."""
        if self.end == -_INF:
            return None
        closed = self.close(partial=partial)
        self.start = self.end = -_INF
        return closed

    def close(self, *, partial: bool = False) -> WindowStats:
        units = self.units
        stats = {name: p.snapshot(units.get(name, "")) for name, p in self.points.items()}
        window = WindowStats(
            self.device,
            self.start,
            self.end,
            stats,
            self.readings,
            self.failed,
            self.last_seen,
            partial,
        )
        for p in self.points.values():
            p.reset()
        self.readings = 0
        self.failed = 0
        return window
