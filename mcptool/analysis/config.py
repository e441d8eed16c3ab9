"""The ``[analysis]`` section of the gateway config, validated into dataclasses.

The gateway owns the TOML file; it hands the parsed ``analysis`` table to
``AnalysisConfig.from_dict`` and embeds the result. Every mistake a user can make in that
table becomes one ``AnalysisConfigError`` line that names the key and the fix.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mcptool.errors import UsageError

__all__ = ["AnalysisConfig", "AnalysisConfigError", "ThresholdRule"]


class AnalysisConfigError(UsageError):
    """A key of the ``[analysis]`` section is missing, misspelt or out of range."""


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """``point`` above ``above`` or below ``below`` at any reading of a window.

    ``point`` and ``device`` are shell patterns (``temp*``); ``device`` defaults to all.
    """

    point: str
    device: str = "*"
    above: float | None = None
    below: float | None = None
    severity: str = "warning"

    def matches(self, device: str, point: str) -> bool:
        return fnmatch.fnmatchcase(point, self.point) and fnmatch.fnmatchcase(device, self.device)

    def describe(self) -> str:
        parts = []
        if self.above is not None:
            parts.append(f"above {self.above:g}")
        if self.below is not None:
            parts.append(f"below {self.below:g}")
        return " or ".join(parts)


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    """Windowing, triggers, model and queue settings (see docs/ANALYSIS.md for each key)."""

    enabled: bool = True
    ollama: str | None = None  # None: $OLLAMA_HOST, else http://127.0.0.1:11434
    model: str = "llama3.2"
    window_s: float = 10.0
    # triggers
    every_window: bool = False
    zscore: float | None = 3.0
    baseline_windows: int = 30
    min_baseline_windows: int = 5
    zscore_min_std: float = 1e-6
    zscore_min_rel: float = 0.01
    stuck: bool = True
    stuck_min_count: int = 3
    flatline_ratio: float | None = 0.1
    offline_after_s: float | None = 30.0
    gap_after_s: float | None = None
    thresholds: tuple[ThresholdRule, ...] = ()
    # model calls
    cooldown_s: float = 300.0
    max_in_flight: int = 1
    min_call_interval_s: float = 2.0
    request_timeout_s: float = 120.0
    retry_after_s: float = 5.0
    temperature: float = 0.0
    seed: int | None = 42
    num_ctx: int | None = None
    keep_alive: str | None = "30m"
    prompts_dir: Path | None = None
    # durable backlog of windows waiting for the model
    queue_path: Path | None = None
    queue_max: int = 1000
    statistics_findings: bool = True

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> AnalysisConfigError:
            return AnalysisConfigError(f"analysis.{key}: {why}")

        if not self.model.strip():
            raise bad("model", "name a model, e.g. model = 'llama3.2'")
        if not (self.window_s > 0 and math.isfinite(self.window_s)):
            raise bad("window_s", f"must be a positive number of seconds, not {self.window_s!r}")
        if self.zscore is not None and self.zscore <= 0:
            raise bad("zscore", "must be positive (e.g. 3.0), or false to turn it off")
        if self.zscore_min_std < 0 or not 0 <= self.zscore_min_rel < 1:
            raise bad("zscore_min_rel", "must be from 0 to 1 (a fraction of the usual level)")
        if self.baseline_windows < 2:
            raise bad("baseline_windows", "must be at least 2")
        if not 2 <= self.min_baseline_windows <= self.baseline_windows:
            raise bad("min_baseline_windows", "must be between 2 and baseline_windows")
        if self.stuck_min_count < 2:
            raise bad("stuck_min_count", "must be at least 2 readings")
        if self.flatline_ratio is not None and not 0 < self.flatline_ratio < 1:
            raise bad("flatline_ratio", "must be between 0 and 1 (e.g. 0.1), or false")
        for key in ("offline_after_s", "gap_after_s"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise bad(key, "must be a positive number of seconds, or false")
        if self.max_in_flight < 1:
            raise bad("max_in_flight", "must be at least 1")
        for key in ("cooldown_s", "min_call_interval_s", "retry_after_s"):
            if getattr(self, key) < 0:
                raise bad(key, "must not be negative")
        if self.request_timeout_s <= 0:
            raise bad("request_timeout_s", "must be positive")
        if self.queue_max < 1:
            raise bad("queue_max", "must be at least 1")
        if self.prompts_dir is not None and not Path(self.prompts_dir).is_dir():
            raise bad("prompts_dir", f"{self.prompts_dir} is not a directory")
        for i, rule in enumerate(self.thresholds):
            if rule.above is None and rule.below is None:
                raise bad(f"thresholds[{i}]", "give `above`, `below` or both")
            if rule.severity not in ("warning", "critical"):
                raise bad(f"thresholds[{i}].severity", "must be 'warning' or 'critical'")

    @property
    def gap_s(self) -> float:
        """An interval between two readings of a point longer than this is a gap."""
        return self.gap_after_s if self.gap_after_s is not None else self.window_s / 2

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], *, base_dir: Path | None = None) -> AnalysisConfig:
        """Validate a parsed ``[analysis]`` table; relative paths are taken from ``base_dir``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            hint = _closest(unknown[0], known)
            raise AnalysisConfigError(
                f"analysis.{unknown[0]}: unknown key"
                + (
                    f" (did you mean `{hint}`?)"
                    if hint
                    else f"; known keys: {', '.join(sorted(known))}"
                )
            )
        kwargs: dict[str, Any] = {}
        defaults = cls()
        for key, value in table.items():
            kwargs[key] = _coerce(key, value, getattr(defaults, key), base_dir)
        return cls(**kwargs)


_OPTIONAL_OFF = {
    "ollama",
    "zscore",
    "flatline_ratio",
    "offline_after_s",
    "gap_after_s",
    "seed",
    "num_ctx",
    "keep_alive",
    "prompts_dir",
    "queue_path",
}
_FLOATS = {
    "window_s",
    "zscore",
    "zscore_min_std",
    "zscore_min_rel",
    "flatline_ratio",
    "offline_after_s",
    "gap_after_s",
    "cooldown_s",
    "min_call_interval_s",
    "request_timeout_s",
    "retry_after_s",
    "temperature",
}
_INTS = {
    "baseline_windows",
    "min_baseline_windows",
    "stuck_min_count",
    "max_in_flight",
    "queue_max",
    "seed",
    "num_ctx",
}
_BOOLS = {"enabled", "every_window", "stuck", "statistics_findings"}


def _coerce(key: str, value: Any, default: Any, base_dir: Path | None) -> Any:
    where = f"analysis.{key}"
    if key in _OPTIONAL_OFF and (value is False or value is None):
        return None
    if key in _BOOLS:
        if not isinstance(value, bool):
            raise AnalysisConfigError(f"{where}: must be true or false, not {value!r}")
        return value
    if key in _INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise AnalysisConfigError(f"{where}: must be a whole number, not {value!r}")
        return value
    if key in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AnalysisConfigError(f"{where}: must be a number, not {value!r}")
        if not math.isfinite(value):  # NaN would pass every range check below
            raise AnalysisConfigError(f"{where}: must be a finite number, not {value!r}")
        return float(value)
    if key in ("prompts_dir", "queue_path"):
        if not isinstance(value, str | Path):
            raise AnalysisConfigError(f"{where}: must be a path, not {value!r}")
        path = Path(value).expanduser()
        return base_dir / path if base_dir is not None and not path.is_absolute() else path
    if key in ("model", "keep_alive", "ollama"):
        if not isinstance(value, str):
            raise AnalysisConfigError(f"{where}: must be a string, not {value!r}")
        return value
    if key == "thresholds":
        if not isinstance(value, list):
            raise AnalysisConfigError(
                f"{where}: must be a list of tables ([[analysis.thresholds]])"
            )
        return tuple(_threshold(i, item) for i, item in enumerate(value))
    return value  # pragma: no cover - every field is handled above


def _threshold(i: int, item: Any) -> ThresholdRule:
    where = f"analysis.thresholds[{i}]"
    if not isinstance(item, Mapping):
        raise AnalysisConfigError(f"{where}: must be a table with `point` and `above`/`below`")
    known = {"point", "device", "above", "below", "severity"}
    unknown = sorted(set(item) - known)
    if unknown:
        raise AnalysisConfigError(
            f"{where}.{unknown[0]}: unknown key; known: {', '.join(sorted(known))}"
        )
    if not isinstance(item.get("point"), str):
        raise AnalysisConfigError(
            f"{where}.point: name the point (a name or a pattern like 'temp*')"
        )
    for key in ("above", "below"):
        value = item.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise AnalysisConfigError(f"{where}.{key}: must be a number, not {value!r}")
        if value is not None and not math.isfinite(value):
            raise AnalysisConfigError(f"{where}.{key}: must be a finite number, not {value!r}")
    device = item.get("device", "*")
    severity = item.get("severity", "warning")
    if not isinstance(device, str) or not isinstance(severity, str):
        raise AnalysisConfigError(f"{where}: `device` and `severity` are strings")
    above, below = item.get("above"), item.get("below")
    return ThresholdRule(
        point=item["point"],
        device=device,
        above=None if above is None else float(above),
        below=None if below is None else float(below),
        severity=severity,
    )


def _closest(word: str, choices: set[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(word, sorted(choices), n=1)
    return match[0] if match else None
