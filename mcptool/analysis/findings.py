"""Findings: the JSON schema the model must answer with, its validation, the record.

A model answer becomes a finding only after it parsed as JSON and validated against the
schema (jsonschema) and named only points of the device. Anything else is repaired once
by the pipeline or reported as an invalid answer, never published as a finding. When the
model cannot be asked (busy, down, not pulled), a finding built from the triggers alone
is published instead, with ``source: "statistics"`` so nobody mistakes it for the
model's explanation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from mcptool.analysis.stats import WindowStats

__all__ = [
    "FINDING_SCHEMA",
    "SEVERITIES",
    "Finding",
    "InvalidAnswer",
    "finding_schema",
    "parse_answer",
    "rank",
    "severity_ceiling",
    "severity_floor",
    "statistics_finding",
]

SEVERITIES = ("normal", "warning", "critical")

# Bounds a technician can read at 3 a.m., and that a small model cannot run away with:
# without them the 0.5B model repeated a point name until num_predict cut the JSON.
SUMMARY_MAX = 300
LINE_MAX = 160
LINES_MAX = 3
POINTS_MAX = 8

# ``severity`` comes last, after the model has written out what it sees: a small model
# that must rate first rates before it has read its own explanation (measured: the 0.5B
# model rated a boiler past its critical threshold "normal" with severity first).
FINDING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "minLength": 1, "maxLength": SUMMARY_MAX},
        "suspected_causes": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": LINE_MAX},
            "maxItems": LINES_MAX,
        },
        "recommended_actions": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": LINE_MAX},
            "maxItems": LINES_MAX,
        },
        "points": {
            "type": "array",
            "items": {"type": "string"},
            "maxItems": POINTS_MAX,
            "uniqueItems": True,
        },
        "severity": {"type": "string", "enum": list(SEVERITIES)},
    },
    "required": ["summary", "suspected_causes", "recommended_actions", "points", "severity"],
    "additionalProperties": False,
}


def finding_schema(point_names: Sequence[str]) -> dict[str, Any]:
    """The schema for one device: ``points`` may only name that device's points.

    Ollama turns the schema into a grammar, so the enum keeps a small model from
    inventing point names in the first place, and validation catches the rest.
    """
    schema = json.loads(json.dumps(FINDING_SCHEMA))
    if point_names:
        points = schema["properties"]["points"]
        points["items"] = {"type": "string", "enum": list(point_names)}
        points["maxItems"] = min(POINTS_MAX, len(point_names))
    return schema


class InvalidAnswer(ValueError):
    """The model's answer is not a valid finding; ``reason`` says why, in one line."""

    def __init__(self, reason: str, raw: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


def parse_answer(text: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The answer as a dict that satisfies ``schema``, or ``InvalidAnswer``."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise InvalidAnswer(f"not JSON ({exc})", text) from None
    for each in (schema, FINDING_SCHEMA):  # a device's schema, and the finding's shape
        error = best_match(_validator(each).iter_errors(data))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the answer"
            raise InvalidAnswer(f"{where}: {error.message}", text)
    if not data["summary"].strip():
        raise InvalidAnswer("summary: is blank", text)
    return data


def _validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema)


@dataclass(frozen=True, slots=True)
class Finding:
    """What the analysis says about one device window; ``source`` is model or statistics."""

    device: str
    window_start: float
    window_end: float
    severity: str
    summary: str
    suspected_causes: tuple[str, ...] = ()
    recommended_actions: tuple[str, ...] = ()
    points: tuple[str, ...] = ()
    source: str = "model"
    model: str | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    triggers: tuple[Mapping[str, Any], ...] = ()
    statistics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reason: str | None = None
    repaired: bool = False
    # what the model rated, when the statistics' floor raised it (see ``severity_floor``)
    model_severity: str | None = None
    # numbers the finding quotes that are not in its window (see ``grounding``)
    ungrounded: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Stable across retries and restarts, so a consumer can drop duplicates."""
        return f"{self.device}@{self.window_start:.0f}/{self.source}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "finding",
            "id": self.id,
            "device": self.device,
            "window": {
                "start": self.window_start,
                "end": self.window_end,
                "seconds": self.window_end - self.window_start,
            },
            "severity": self.severity,
            "summary": self.summary,
            "suspected_causes": list(self.suspected_causes),
            "recommended_actions": list(self.recommended_actions),
            "points": list(self.points),
            "source": self.source,
            "statistics_only": self.source == "statistics",
            "model": self.model,
            "timings": dict(self.timings),
            "triggers": [dict(t) for t in self.triggers],
            "statistics": {k: dict(v) for k, v in self.statistics.items()},
            "reason": self.reason,
            "repaired": self.repaired,
            "model_severity": self.model_severity,
            "ungrounded": list(self.ungrounded),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        window = data["window"]
        return cls(
            device=data["device"],
            window_start=window["start"],
            window_end=window["end"],
            severity=data["severity"],
            summary=data["summary"],
            suspected_causes=tuple(data.get("suspected_causes", ())),
            recommended_actions=tuple(data.get("recommended_actions", ())),
            points=tuple(data.get("points", ())),
            source=data.get("source", "model"),
            model=data.get("model"),
            timings=data.get("timings") or {},
            triggers=tuple(data.get("triggers", ())),
            statistics=data.get("statistics") or {},
            reason=data.get("reason"),
            repaired=bool(data.get("repaired", False)),
            model_severity=data.get("model_severity"),
            ungrounded=tuple(data.get("ungrounded") or ()),
        )


def rank(severity: str) -> int:
    """0 normal, 1 warning, 2 critical (an unknown name counts as a warning)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else 1


def severity_floor(triggers: Iterable[Mapping[str, Any]]) -> str:
    """The least severity a finding on these triggers may have.

    The statistics stay the source of truth and the model explains: a device gone
    offline is critical, and a configured threshold crossed is at least the severity its
    rule gives (a limit someone set on purpose), whatever the model rates it. The
    statistical rules (z-score, stuck, flat-line) set no floor: the window may well be
    harmless (a z-score at a start-up), and saying so is the model's job.
    """
    floor = "normal"
    for t in triggers:
        if t.get("rule") in ("threshold", "offline"):
            floor = worst((floor, str(t.get("severity", "warning"))))
    return floor


def severity_ceiling(triggers: Iterable[Mapping[str, Any]]) -> str:
    """The most a finding may say: "warning" when no rule fired (``every_window`` only).

    A critical finding wakes someone at 3 a.m.; with nothing in the statistics behind it,
    it is the model's guess (measured: the 0.5B model rated healthy windows critical), so
    it is kept as a warning and the model's rating as ``model_severity``.
    """
    rules = {str(t.get("rule")) for t in triggers}
    return "warning" if rules <= {"every_window"} else "critical"


def worst(severities: Iterable[str]) -> str:
    ranks = {name: i for i, name in enumerate(SEVERITIES)}
    return max(severities, key=lambda s: ranks.get(s, 1), default="normal")


def window_statistics(window: WindowStats) -> dict[str, dict[str, Any]]:
    """Every point's figures, floats to 6 significant digits (what a sensor can tell)."""
    return {
        name: {k: _round(v) for k, v in s.as_dict().items()} for name, s in window.points.items()
    }


def _round(value: Any) -> Any:
    if isinstance(value, float) and value == value and value not in (float("inf"), -float("inf")):
        return float(f"{value:.6g}")
    return value


def involved(
    statistics: Mapping[str, Mapping[str, Any]], *point_lists: Iterable[str]
) -> dict[str, Mapping[str, Any]]:
    """The figures of the points a finding is about (a record stays small whatever the
    size of the device; the prompt had them all)."""
    names = dict.fromkeys(p for points in point_lists for p in points)
    return {name: statistics[name] for name in names if name in statistics}


def statistics_finding(
    device: str,
    window_start: float,
    window_end: float,
    triggers: Sequence[Mapping[str, Any]],
    statistics: Mapping[str, Mapping[str, Any]],
    reason: str,
) -> Finding:
    """A finding from the triggers alone (as dicts, see ``TriggerEvent.as_dict``), for
    when the model cannot be asked; ``reason`` says why."""
    points = tuple(dict.fromkeys(p for t in triggers for p in t.get("points", ())))
    summary = "; ".join(str(t.get("detail", "")) for t in triggers) or "window flagged"
    return Finding(
        device=device,
        window_start=window_start,
        window_end=window_end,
        severity=worst(str(t.get("severity", "warning")) for t in triggers),
        summary=summary[:1000],
        points=points,
        source="statistics",
        triggers=tuple(triggers),
        statistics=involved(statistics, points),
        reason=reason,
    )
