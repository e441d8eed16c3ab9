"""Prompts: one per device and window, from files a user can read and change.

The defaults ship in ``mcptool/analysis/prompts/*.txt`` and are read with
``importlib.resources`` (so they work from a wheel or a zip). A user's ``prompts_dir``
replaces any of them by file name; the rest stay the defaults. Templates use
``string.Template`` (``$name``) rather than ``str.format`` because prompts are full of
braces (JSON examples) that ``format`` would trip over.

The prompt carries statistics, never raw series: a few lines per point whatever the
poll rate, so the prompt (and the model's prompt-evaluation time) stays small.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from mcptool.analysis.analyzer import PointInfo
from mcptool.analysis.config import AnalysisConfigError
from mcptool.analysis.stats import PointStats, WindowStats
from mcptool.analysis.triggers import TriggerEvent, Usual

__all__ = ["FILES", "Prompts", "render_points"]

FILES: dict[str, frozenset[str]] = {
    "system.txt": frozenset(),
    "window.txt": frozenset(
        {
            "device",
            "description",
            "window_start",
            "window_end",
            "window_seconds",
            "readings",
            "failed_polls",
            "triggers",
            "points",
            "point_names",
        }
    ),
    "repair.txt": frozenset({"error", "point_names"}),
}


@dataclass(frozen=True, slots=True)
class Prompts:
    """The three templates: the system prompt, the window prompt, the repair prompt."""

    system: str
    window: Template
    repair: Template
    sources: Mapping[str, str]

    @classmethod
    def load(cls, directory: Path | None = None) -> Prompts:
        """The packaged defaults, each replaced by ``directory/<name>`` when that exists."""
        texts: dict[str, str] = {}
        sources: dict[str, str] = {}
        package = resources.files("mcptool.analysis.prompts")
        for name, allowed in FILES.items():
            user = directory / name if directory is not None else None
            if user is not None and user.is_file():
                try:
                    text = user.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    raise AnalysisConfigError(f"prompt {user}: cannot read it ({exc})") from exc
                sources[name] = str(user)
            else:
                text = package.joinpath(name).read_text(encoding="utf-8")
                sources[name] = f"(default) {name}"
            template = Template(text)
            if not template.is_valid():
                raise AnalysisConfigError(
                    f"prompt {sources[name]}: a `$` not followed by a name; write $$ for a dollar"
                )
            unknown = sorted(set(template.get_identifiers()) - allowed)
            if unknown:
                known = ", ".join(f"${n}" for n in sorted(allowed)) or "none"
                raise AnalysisConfigError(
                    f"prompt {sources[name]}: unknown placeholder ${unknown[0]}; known: {known}"
                )
            texts[name] = text
        return cls(
            texts["system.txt"],
            Template(texts["window.txt"]),
            Template(texts["repair.txt"]),
            sources,
        )

    def window_prompt(
        self,
        window: WindowStats,
        events: Sequence[TriggerEvent],
        info: Mapping[str, PointInfo],
        usual: Mapping[str, Usual] | None = None,
        description: str = "",
    ) -> str:
        names = _names(window, info)
        return (
            self.window.substitute(
                device=window.device,
                description=f"About it: {description}" if description else "",
                window_start=_iso(window.start),
                window_end=_iso(window.end),
                window_seconds=f"{window.seconds:g}",
                readings=window.readings,
                failed_polls=window.failed_polls,
                # each rule's severity: a small model rated a boiler past its critical
                # threshold "normal" when the prompt did not say the threshold was critical
                triggers="\n".join(f"- {e.severity} [{e.rule}] {e.detail}" for e in events)
                or "- (none)",
                points=render_points(window, info, usual),
                point_names=", ".join(names),
            ).strip()
            + "\n"
        )

    def repair_prompt(self, error: str, point_names: Sequence[str]) -> str:
        return self.repair.substitute(error=error, point_names=", ".join(point_names))


def _names(window: WindowStats, info: Mapping[str, PointInfo]) -> list[str]:
    return list(dict.fromkeys([*window.points, *info]))


def render_points(
    window: WindowStats, info: Mapping[str, PointInfo], usual: Mapping[str, Usual] | None = None
) -> str:
    """One line per point: name (unit, description): the window's statistics."""
    lines = []
    for name in _names(window, info):
        point = info.get(name) or PointInfo(name)
        stats = window.points.get(name)
        unit = point.unit or (stats.unit if stats else "")
        label = name + (f" ({unit})" if unit else "")
        if point.description:
            label += f" [{point.description}]"
        lines.append(f"- {label}: {_describe(stats, unit, (usual or {}).get(name))}")
    return "\n".join(lines) if lines else "- (no points)"


def _describe(s: PointStats | None, unit: str, usual: Usual | None) -> str:
    if s is None or s.count == 0:
        missing = f", {s.missing} failed reads" if s is not None and s.missing else ""
        last = f"; last value {_num(s.last)}" if s is not None and s.last is not None else ""
        return f"no readings{missing}{last}"
    u = f" {unit}" if unit else ""
    if s.discrete:
        text = f"n={s.count}, on {s.mean:.0%} of the time, last {_num(s.last)}"
    else:
        text = (
            f"n={s.count}, min {_num(s.min)}, max {_num(s.max)}, mean {_num(s.mean)}, "
            f"sd {_num(s.std)}, last {_num(s.last)}{u}"
        )
        if s.rate_per_s is not None and s.trend_significant:
            text += f", trend {_num(s.rate_per_s * 60, signed=True)}{u}/min"
        elif s.rate_per_s is not None:
            # a slope fitted to a few seconds of noise, shown per minute, reads as a real
            # drift to a model (and to a technician): within two standard errors it is none
            text += ", no significant trend"
    if s.gaps:
        text += f", {s.gaps} gaps"
    if s.missing:
        text += f", {s.missing} failed reads"
    if usual is not None and not s.discrete:
        text += (
            f"; usual level {_num(usual.mean)}{u} (sd {_num(usual.sd)}, {usual.windows} windows)"
        )
    return text


def _num(value: Any, *, signed: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if value != value or value in (math.inf, -math.inf):
        return str(value)
    text = f"{value:+.4g}" if signed else f"{value:.4g}"
    return text


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")
