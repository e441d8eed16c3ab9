"""Triggers: the rules that decide a window is worth a model call.

Every rule runs once per closed window, on the window's statistics, never per reading:
a threshold looks at the window's min and max (so one reading past the limit is enough),
the z-score compares the window's mean with the means of the past windows, stuck and
flat-line compare the window's spread with the spread the point used to have. So the
hot path pays nothing for triggers, and a rule sees the same numbers the model is shown.

Why z-score on window means (not on single readings): the mean of a window is what the
prompt talks about, and a single noisy reading must not cost a model call.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from mcptool.analysis.config import AnalysisConfig, ThresholdRule
from mcptool.analysis.stats import PointStats, WindowStats

__all__ = ["RULES", "Baseline", "TriggerEngine", "TriggerEvent", "Usual", "signature"]

RULES = ("threshold", "zscore", "stuck", "flatline", "offline", "every_window")


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """One rule fired for one device window; ``points`` are the points it concerns."""

    rule: str
    device: str
    points: tuple[str, ...]
    detail: str
    severity: str = "warning"
    window_start: float = 0.0
    window_end: float = 0.0
    values: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "device": self.device,
            "points": list(self.points),
            "detail": self.detail,
            "severity": self.severity,
            "window": {"start": self.window_start, "end": self.window_end},
            "values": self.values,
        }


class Usual(NamedTuple):
    """A point's past windows: its usual level and spread of readings, and how many windows."""

    mean: float
    sd: float
    windows: int


@dataclass(slots=True)
class _History:
    means: deque[float]
    stds: deque[float]
    varied: deque[bool]
    noises: deque[float]  # spread about the trend line (PointStats.noise)
    change_rates: deque[float]  # share of readings that differed from the one before

    def to_json(self, windows: int | None = None) -> dict[str, list[Any]]:
        """Each series, oldest first; ``windows`` keeps only the newest that many."""
        start = -windows if windows else 0
        return {f.name: list(getattr(self, f.name))[start:] for f in fields(self)}

    @classmethod
    def from_json(cls, data: Any, size: int) -> _History:
        """The inverse of :meth:`to_json` (the newest ``size`` windows); ValueError for
        anything else."""
        if not isinstance(data, Mapping):
            raise ValueError("a point's history is not an object")
        series = []
        for f in fields(cls):
            values = data.get(f.name)
            if not isinstance(values, list):
                raise ValueError(f"a point's history has no list {f.name!r}")
            kind = _flag if f.name == "varied" else _number
            if not all(kind(v) for v in values):
                raise ValueError(f"a point's {f.name!r} holds a value of the wrong type")
            series.append(deque(values, maxlen=size))
        if len({len(s) for s in series}) != 1:
            raise ValueError("a point's history has series of different lengths")
        return cls(*series)


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _number(value: Any) -> bool:
    # NaN and infinities included: a float register can read them, and a mean with one
    # is what the analysis kept
    return isinstance(value, int | float) and not isinstance(value, bool)


class Baseline:
    """The past ``size`` windows of each point: their means, spreads, and if they moved.

    Every window joins the baseline after it was judged, anomalies included, so a lasting
    change of operating point (a new setpoint) stops firing after a while instead of
    firing forever; the model-call cooldown covers the windows in between.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._points: dict[tuple[str, str], _History] = {}

    def get(self, device: str, point: str) -> _History | None:
        return self._points.get((device, point))

    def to_json(self, device: str, windows: int | None = None) -> dict[str, Any]:
        """What the baseline holds of ``device``, as JSON (point name -> its series);
        ``windows`` keeps only the newest that many windows, to bound the size."""
        return {
            point: history.to_json(windows)
            for (name, point), history in self._points.items()
            if name == device
        }

    def load_json(self, device: str, data: Any) -> None:
        """Replace what the baseline holds of ``device`` with ``data`` (of :meth:`to_json`;
        a longer history keeps its newest ``size`` windows). ValueError, and nothing
        changed, when ``data`` is not such a value."""
        if not isinstance(data, Mapping):
            raise ValueError("the baseline is not an object")
        loaded = {point: _History.from_json(series, self.size) for point, series in data.items()}
        for key in [key for key in self._points if key[0] == device]:
            del self._points[key]
        for point, history in loaded.items():
            if history.means:
                self._points[(device, point)] = history

    def add(self, window: WindowStats) -> None:
        for name, stats in window.points.items():
            if stats.count == 0 or stats.mean is None:
                continue
            history = self._points.get((window.device, name))
            if history is None:
                size = self.size
                history = _History(*(deque(maxlen=size) for _ in range(5)))  # type: ignore[arg-type]
                self._points[(window.device, name)] = history
            history.means.append(stats.mean)
            history.stds.append(stats.std or 0.0)
            history.varied.append(stats.varied)
            history.noises.append(stats.noise if stats.noise is not None else stats.std or 0.0)
            history.change_rates.append(stats.changes / stats.count)


class TriggerEngine:
    """Evaluates the configured rules on closed windows and keeps the baseline."""

    def __init__(self, config: AnalysisConfig) -> None:
        self.config = config
        self.baseline = Baseline(config.baseline_windows)
        self._rules: dict[tuple[str, str], tuple[ThresholdRule, ...]] = {}

    def _thresholds(self, device: str, point: str) -> tuple[ThresholdRule, ...]:
        key = (device, point)
        rules = self._rules.get(key)
        if rules is None:
            rules = tuple(r for r in self.config.thresholds if r.matches(device, point))
            self._rules[key] = rules
        return rules

    def evaluate(self, window: WindowStats) -> tuple[list[TriggerEvent], dict[str, Usual]]:
        """The events of ``window``, and (when any fired) the points' usual values, both
        judged before the window joins the baseline; then learn from it."""
        events: list[TriggerEvent] = []
        for stats in window.points.values():
            if stats.count == 0:
                continue
            events.extend(self._point_events(window, stats))
        if self.config.every_window and window.readings:
            events.append(
                self._event(
                    window,
                    "every_window",
                    [p for p in window.points],
                    # said plainly: a small model read "flagged ... every window" as a fault
                    "no rule fired; a routine look at every window",
                    "normal",
                )
            )
        usual = self.usual(window) if events else {}
        if not window.partial:  # a part of a window would skew the usual level and noise
            self.baseline.add(window)
        return _merge(events), usual

    def usual(self, window: WindowStats) -> dict[str, Usual]:
        out = {}
        for name in window.points:
            history = self.baseline.get(window.device, name)
            if history is not None and history.means:
                mean, sd = _level(history)
                out[name] = Usual(mean, sd, len(history.means))
        return out

    def offline(self, window: WindowStats, silent_s: float) -> TriggerEvent:
        detail = f"no reading for {silent_s:.0f} s"
        if window.failed_polls:
            detail += f" ({window.failed_polls} failed polls in the window)"
        return self._event(window, "offline", list(window.points), detail, "critical")

    def _point_events(self, window: WindowStats, s: PointStats) -> Iterable[TriggerEvent]:
        config = self.config
        unit = f" {s.unit}" if s.unit else ""
        assert s.min is not None and s.max is not None and s.mean is not None
        for rule in self._thresholds(window.device, s.name):
            if rule.above is not None and s.max > rule.above:
                yield self._event(
                    window,
                    "threshold",
                    [s.name],
                    f"{s.name} reached {s.max:g}{unit}, above {rule.above:g}{unit}",
                    rule.severity,
                    {s.name: s.max},
                )
            if rule.below is not None and s.min < rule.below:
                yield self._event(
                    window,
                    "threshold",
                    [s.name],
                    f"{s.name} fell to {s.min:g}{unit}, below {rule.below:g}{unit}",
                    rule.severity,
                    {s.name: s.min},
                )
        if s.discrete or window.partial:
            # on/off states: a change is an event, not a statistical anomaly; a part of a
            # window (a stop) has too few readings to be set against whole ones
            return
        history = self.baseline.get(window.device, s.name)
        if history is None or len(history.means) < config.min_baseline_windows:
            return
        if config.zscore is not None:
            mean, spread = _level(history)
            # floors: a signal that barely moves (a setpoint, a smooth slow sine) must not
            # make a change of a fraction of a percent look like many deviations
            floor = max(config.zscore_min_std, config.zscore_min_rel * abs(mean))
            z = (s.mean - mean) / max(spread, floor)
            if abs(z) >= config.zscore:
                yield self._event(
                    window,
                    "zscore",
                    [s.name],
                    f"{s.name} mean {s.mean:.4g}{unit} is {z:+.1f} sd from its usual "
                    f"level {mean:.4g}{unit} (past {len(history.means)} windows)",
                    "warning",
                    {s.name: round(z, 2)},
                )
        # "used to move": it varied in most past windows (a live analog signal does)
        used_to_move = 2 * sum(history.varied) >= len(history.varied)
        # and a window without a change is unlikely for it: a register quantised to 0.1
        # that creeps by a step every few seconds changes once or twice a window, so a
        # window with no change is ordinary; a noisy sensor changes at every reading.
        # Changes as a Poisson count: P(none) = exp(-expected) <= 5 % from 3 expected
        expected_changes = statistics.median(history.change_rates) * s.count
        if (
            config.stuck
            and used_to_move
            and s.count >= config.stuck_min_count
            and not s.varied
            and expected_changes >= _STUCK_EXPECTED_CHANGES
        ):
            yield self._event(
                window,
                "stuck",
                [s.name],
                f"{s.name} stuck at {s.max:g}{unit} for {s.count} readings; "
                "it moved in earlier windows",
                "warning",
                {s.name: s.max},
            )
        elif (
            config.flatline_ratio is not None
            and used_to_move
            and s.count >= 3
            and s.noise is not None
        ):
            # the noise about the trend line, not the spread: a smooth sine spreads on its
            # flanks and hardly at its crest, yet its noise is the same throughout. Against
            # the least noise of the past windows, not their median: a curve without noise
            # leaves a residual that comes and goes with its curvature, and a real collapse
            # of the noise falls far below even the quietest window
            usual = min(history.noises)
            floor = max(config.zscore_min_std, 1e-9 * abs(s.mean))  # float rounding, not noise
            if usual > floor and s.noise < config.flatline_ratio * usual:
                yield self._event(
                    window,
                    "flatline",
                    [s.name],
                    f"{s.name} flat: noise {s.noise:.3g}{unit}, against at least "
                    f"{usual:.3g}{unit} before",
                    "warning",
                    {s.name: s.noise},
                )

    @staticmethod
    def _event(
        window: WindowStats,
        rule: str,
        points: list[str],
        detail: str,
        severity: str,
        values: dict[str, Any] | None = None,
    ) -> TriggerEvent:
        return TriggerEvent(
            rule,
            window.device,
            tuple(points),
            detail,
            severity,
            window.start,
            window.end,
            values or {},
        )


_STUCK_EXPECTED_CHANGES = 3.0


def _level(history: _History) -> tuple[float, float]:
    """The usual level of a point and the usual spread of its readings, robustly.

    Level: the median of the past windows' means. Spread: the spread of those means
    (1.4826 x their median absolute deviation, which estimates a standard deviation)
    combined with the median spread of readings inside a window, as the law of total
    variance combines them. So the z-score asks "is this window's level outside the
    usual spread of readings?": a noisy but steady signal does not fire it, a level
    shift of a few usual spreads does, one wild window does not blind the rule for the
    windows after it, and a lasting change becomes the new normal once it fills half
    the baseline.
    """
    center = statistics.median(history.means)
    between = 1.4826 * statistics.median(abs(m - center) for m in history.means)
    within = statistics.median(history.stds)
    return center, (between * between + within * within) ** 0.5


def _merge(events: list[TriggerEvent]) -> list[TriggerEvent]:
    """Drop exact duplicates (two threshold rules saying the same), keep order."""
    seen: set[tuple[str, tuple[str, ...], str]] = set()
    out = []
    for event in events:
        key = (event.rule, event.points, event.detail)
        if key not in seen:
            seen.add(key)
            out.append(event)
    return out


def signature(events: Iterable[TriggerEvent]) -> frozenset[tuple[str, str]]:
    """What fired, without numbers: the same signature again means nothing new to explain."""
    return frozenset((e.rule, p) for e in events for p in e.points)
