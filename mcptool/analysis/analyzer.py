"""The sans-IO core of analysis: readings in, closed windows with their triggers out.

No clock, no asyncio, no I/O: the caller passes each reading's time, and calls ``tick``
with the current time so that windows of silent devices close and offline devices are
noticed. The async pipeline (``pipeline.py``) and the benchmark drive the same object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mcptool.analysis.config import AnalysisConfig
from mcptool.analysis.stats import DeviceWindow, PointStats, WindowStats
from mcptool.analysis.triggers import TriggerEngine, TriggerEvent, Usual

__all__ = ["STATE_VERSION", "Analyzer", "PointInfo", "WindowReport"]

# the form of Analyzer.state: a reader refuses any other (a new form gets a new number)
STATE_VERSION = 1


class _PointLike(Protocol):
    name: str
    unit: str


@dataclass(frozen=True, slots=True)
class PointInfo:
    """What a prompt says about a point: its name, unit and an optional description."""

    name: str
    unit: str = ""
    description: str = ""
    discrete: bool = False

    @classmethod
    def of(cls, point: _PointLike | PointInfo | str) -> PointInfo:
        """From a register-map ``Point`` (bool points are discrete), or a bare name."""
        if isinstance(point, PointInfo):
            return point
        if isinstance(point, str):
            return cls(point)
        kind = str(getattr(point, "type", "") or "")
        table = str(getattr(point, "table", "") or "")
        return cls(
            name=point.name,
            unit=getattr(point, "unit", "") or "",
            description=getattr(point, "description", "") or "",
            discrete=kind == "bool" or table in ("coil", "discrete"),
        )


@dataclass(frozen=True, slots=True)
class WindowReport:
    """A closed window and what fired in it (``events`` empty: nothing to explain)."""

    window: WindowStats
    events: tuple[TriggerEvent, ...]
    usual: Mapping[str, Usual] = field(default_factory=dict)

    @property
    def triggered(self) -> bool:
        return bool(self.events)


_NONE: tuple[WindowReport, ...] = ()


class Analyzer:
    """Windows per device, triggers per closed window, offline detection."""

    def __init__(self, config: AnalysisConfig) -> None:
        self.config = config
        self.triggers = TriggerEngine(config)
        self._windows: dict[str, DeviceWindow] = {}
        self._info: dict[str, dict[str, PointInfo]] = {}
        self._descriptions: dict[str, str] = {}
        self._last_window: dict[str, WindowStats] = {}
        self._offline: set[str] = set()
        self._first_attempt: dict[str, float] = {}
        self.grace_s = min(1.0, config.window_s / 4)
        self.windows_closed = 0
        self.windows_triggered = 0

    # -- set-up ----------------------------------------------------------------------
    def add_device(
        self,
        device: str,
        points: Iterable[_PointLike | PointInfo | str] = (),
        description: str = "",
    ) -> None:
        """Declare a device and its points (names, units) from its register map."""
        infos = {info.name: info for info in map(PointInfo.of, points)}
        self._info[device] = infos
        self._descriptions[device] = description
        self._windows[device] = DeviceWindow(
            device,
            self.config.window_s,
            self.config.gap_s,
            units={n: i.unit for n, i in infos.items()},
            discrete={n: i.discrete for n, i in infos.items()},
        )

    def point_info(self, device: str) -> dict[str, PointInfo]:
        return self._info.get(device, {})

    def description(self, device: str) -> str:
        return self._descriptions.get(device, "")

    @property
    def devices(self) -> list[str]:
        return list(self._windows)

    def is_offline(self, device: str) -> bool:
        return device in self._offline

    # -- state carried between windows -----------------------------------------------
    def state(self, device: str, windows: int | None = None) -> dict[str, Any]:
        """What the analysis of ``device`` carries into its next window, as JSON: each
        point's baseline (what z-score, stuck and flat-line judge against) and last
        reading. ``windows`` keeps only the newest that many windows of the baseline (to
        bound the size). Between windows only: ValueError while a window is open. The
        offline rule's memory is not in it (it is the clock's, not the data's)."""
        window = self._windows.get(device)
        return {
            "version": STATE_VERSION,
            "points": window.to_json() if window is not None else {},
            "baseline": self.triggers.baseline.to_json(device, windows),
        }

    def restore(self, device: str, state: Any) -> None:
        """Continue ``device`` from ``state`` (of :meth:`state`, maybe of another process):
        its next window is judged as if this analyzer had seen the windows before.
        Declare the device first (:meth:`add_device` starts it afresh). ValueError, and
        nothing changed, for an unknown version or a malformed state."""
        if not isinstance(state, Mapping):
            raise ValueError("the analysis state is not an object")
        version = state.get("version")
        if version != STATE_VERSION:
            raise ValueError(f"analysis state version {version!r}, this one reads {STATE_VERSION}")
        if device not in self._windows:
            self.add_device(device)
        declared = self._windows[device]
        if declared.is_open:
            raise ValueError(f"{device}: a window is open; restore before reading")
        window = DeviceWindow(
            device,
            self.config.window_s,
            self.config.gap_s,
            units=declared.units,
            discrete={name: p.discrete for name, p in declared.points.items()},
        )
        window.load_json(state.get("points"))
        self.triggers.baseline.load_json(device, state.get("baseline"))
        self._windows[device] = window  # both checked: nothing changed before this

    # -- the hot path ----------------------------------------------------------------
    def observe(self, device: str, t: float, values: Mapping[str, Any]) -> tuple[WindowReport, ...]:
        """One poll of ``device`` at Unix time ``t``; usually returns no report."""
        window = self._windows.get(device)
        if window is None:
            self.add_device(device)
            window = self._windows[device]
        closed = window.add(t, values)
        if device in self._offline:
            self._offline.discard(device)
        if closed is None:
            return _NONE
        return (self._judge(closed),)

    def observe_failure(self, device: str, t: float) -> tuple[WindowReport, ...]:
        """A poll of ``device`` failed at ``t``; offline is decided by ``tick``."""
        window = self._windows.get(device)
        if window is None:
            self.add_device(device)
            window = self._windows[device]
        self._first_attempt.setdefault(device, t)
        closed = window.failed_poll(t)
        return _NONE if closed is None else (self._judge(closed),)

    def tick(self, now: float) -> list[WindowReport]:
        """Close windows that are over, and report devices silent for ``offline_after_s``."""
        reports = []
        for device, window in self._windows.items():
            closed = window.close_if_due(now, self.grace_s)
            report = self._judge(closed) if closed is not None else None
            offline = self._offline_event(device, window, now)
            if offline is not None:
                if report is not None:
                    report = WindowReport(report.window, (*report.events, offline), report.usual)
                else:
                    last = self._last_window.get(device) or WindowStats(
                        device, now - (self.config.offline_after_s or 0), now
                    )
                    event = TriggerEvent(
                        offline.rule,
                        device,
                        offline.points,
                        offline.detail,
                        offline.severity,
                        last.start,
                        last.end,
                    )
                    report = WindowReport(last, (event,))
                    self.windows_triggered += 1
            if report is not None:
                reports.append(report)
        return reports

    def flush(self) -> list[WindowReport]:
        """Close every open window now, short as it is: the analysis is stopping, and the
        readings in it were already taken from the spool, so a breach in them would
        otherwise never be judged. No offline check: stopping is not silence. Such a
        window is ``partial``: judged by the thresholds only, and not learnt from."""
        reports = []
        for window in self._windows.values():
            closed = window.close_now(partial=True)
            if closed is not None:
                reports.append(self._judge(closed))
        return reports

    def _offline_event(self, device: str, window: DeviceWindow, now: float) -> TriggerEvent | None:
        limit = self.config.offline_after_s
        if limit is None or device in self._offline:
            return None
        since = (
            window.last_seen if window.last_seen is not None else self._first_attempt.get(device)
        )
        if since is None or now - since < limit:
            return None
        self._offline.add(device)
        last = self._last_window.get(device) or WindowStats(device, since, now)
        if not last.points:
            last = WindowStats(
                device,
                last.start,
                last.end,
                {n: _empty(n, i.unit) for n, i in self.point_info(device).items()},
                failed_polls=window.failed,
            )
        return self.triggers.offline(last, now - since)

    def _judge(self, window: WindowStats) -> WindowReport:
        self.windows_closed += 1
        events, usual = self.triggers.evaluate(window) if window.readings else ([], {})
        if window.readings:
            self._last_window[window.device] = window
        if events:
            self.windows_triggered += 1
        return WindowReport(window, tuple(events), usual)


def _empty(name: str, unit: str) -> PointStats:
    return PointStats(name, 0, None, None, None, None, None, None, 0, unit)
