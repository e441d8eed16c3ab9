"""The ``[analysis]`` section of the config: its keys, their ranges, and their checks.

The settings are pydantic dataclasses: plain frozen dataclasses to the code that reads
them (``dataclasses.replace`` works), checked by pydantic when made, from TOML or in
code. ``AnalysisConfig.from_dict`` validates a parsed ``[analysis]`` table and reports
every problem at once, each with its exact path (``analysis.thresholds[1].above: should
be a finite number, got nan``), in the same words as the gateway's config
(``mcptool.problems``). Numbers must be finite (``config_number``), switches must be
booleans and counts whole numbers: nothing is guessed from a string.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from mcptool.errors import UsageError
from mcptool.numbers import config_number
from mcptool.problems import Problem, problems_of

__all__ = ["AnalysisConfig", "AnalysisConfigError", "RouteConfig", "ThresholdRule"]


class AnalysisConfigError(UsageError):
    """The ``[analysis]`` section (or a prompt it names) has problems; ``problems`` lists
    each with its path, the message names the first."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems = problems or [Problem("", message)]
        super().__init__(message)


def _off(value: object) -> object:
    """``false`` turns an optional setting off, like leaving it out."""
    return None if value is False else value


_SETTINGS = ConfigDict(extra="forbid")

Switch = Annotated[bool, Strict()]
Count = Annotated[int, Strict(), Field(ge=1)]
Text = Annotated[str, Strict()]
Number = Annotated[float, Strict(), config_number()]
Seconds = Annotated[float, Strict(), config_number(gt=0)]
Pause = Annotated[float, Strict(), config_number(ge=0)]
Fraction = Annotated[float, Strict(), config_number(ge=0, lt=1)]


Ratio = Annotated[float, Strict(), config_number(gt=0, lt=1)]
Whole = Annotated[int, Strict()]
# settings that ``false`` (or leaving them out) turns off
OffText = Annotated[Text | None, BeforeValidator(_off)]
OffSeconds = Annotated[Seconds | None, BeforeValidator(_off)]
OffRatio = Annotated[Ratio | None, BeforeValidator(_off)]
OffWhole = Annotated[Whole | None, BeforeValidator(_off)]
OffCount = Annotated[Count | None, BeforeValidator(_off)]
OffPath = Annotated[Path | None, BeforeValidator(_off)]


def _problem(key: str, message: str, **values: Any) -> PydanticCustomError:
    """A check across keys, raised at the model: ``key`` is added to its path."""
    return PydanticCustomError("custom_problem", message, {"key": key, **values})


@dataclass(frozen=True, slots=True, config=_SETTINGS)
class ThresholdRule:
    """``point`` above ``above`` or below ``below`` at any reading of a window.

    ``point`` and ``device`` are shell patterns (``temp*``); ``device`` defaults to all.
    """

    point: Annotated[str, Strict(), Field(min_length=1)]
    device: Text = "*"
    above: Number | None = None
    below: Number | None = None
    severity: Literal["warning", "critical"] = "warning"

    @model_validator(mode="after")
    def _a_bound(self) -> ThresholdRule:
        if self.above is None and self.below is None:
            raise PydanticCustomError("custom_problem", "give `above`, `below` or both")
        return self

    def matches(self, device: str, point: str) -> bool:
        return fnmatch.fnmatchcase(point, self.point) and fnmatch.fnmatchcase(device, self.device)

    def describe(self) -> str:
        parts = []
        if self.above is not None:
            parts.append(f"above {self.above:g}")
        if self.below is not None:
            parts.append(f"below {self.below:g}")
        return " or ".join(parts)


@dataclass(frozen=True, slots=True, config=_SETTINGS)
class RouteConfig:
    """One model the analysis may ask: ``[[analysis.routes]]`` (see routing.py)."""

    model: Annotated[str, Strict(), Field(pattern=r"\S")]
    ollama: OffText = None  # None: as [analysis] ollama; "embedded": the local-model extra
    weight: Annotated[float, Strict(), config_number(ge=0)] = 1.0
    fallback: Switch = False
    # asked first about windows whose triggers reach this severity (the bigger model for
    # critical windows), before the weighted draw; None: only by weight and order
    first_for: Literal["warning", "critical"] | None = None


@dataclass(frozen=True, slots=True, config=_SETTINGS)
class AnalysisConfig:
    """Windowing, triggers, model and queue settings (see docs/ANALYSIS.md for each key)."""

    enabled: Switch = True
    ollama: OffText = None  # None: $OLLAMA_HOST, else http://127.0.0.1:11434
    model: Annotated[str, Strict(), Field(pattern=r"\S")] = "llama3.2"
    window_s: Seconds = 10.0
    # triggers
    every_window: Switch = False
    zscore: OffSeconds = 3.0  # a positive number of standard deviations
    baseline_windows: Annotated[Whole, Field(ge=2)] = 30
    min_baseline_windows: Annotated[Whole, Field(ge=2)] = 5
    zscore_min_std: Pause = 1e-6
    zscore_min_rel: Fraction = 0.01
    stuck: Switch = True
    stuck_min_count: Annotated[Whole, Field(ge=2)] = 3
    flatline_ratio: OffRatio = 0.1
    offline_after_s: OffSeconds = 30.0
    gap_after_s: OffSeconds = None
    thresholds: tuple[ThresholdRule, ...] = ()
    # model calls
    cooldown_s: Pause = 300.0
    max_in_flight: Count = 1
    min_call_interval_s: Pause = 2.0
    request_timeout_s: Seconds = 120.0
    retry_after_s: Pause = 5.0
    temperature: Number = 0.0
    seed: OffWhole = 42
    num_ctx: OffCount = None
    # answer tokens at most: a finding within the schema's bounds takes 100-300; without a
    # limit a small model that loops runs on until the context is full
    num_predict: OffCount = 512
    # several models: weighted first choice, then the rest as a fallback chain
    routes: tuple[RouteConfig, ...] = ()
    # seconds between health checks of each route's endpoint (false: no checks)
    route_check_s: OffSeconds = 15.0
    keep_alive: OffText = "30m"
    prompts_dir: OffPath = None
    # durable backlog of windows waiting for the model
    queue_path: OffPath = None
    queue_max: Count = 1000
    statistics_findings: Switch = True

    @field_validator("prompts_dir", "queue_path", mode="after")
    @classmethod
    def _from_config_dir(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Relative paths are taken from the config file's directory."""
        if value is None:
            return None
        path = value.expanduser()
        base = (info.context or {}).get("base_dir")
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        if info.field_name == "prompts_dir" and not path.is_dir():
            raise PydanticCustomError("custom_problem", "{path} is not a directory", {"path": path})
        return path

    @model_validator(mode="after")
    def _across_keys(self) -> AnalysisConfig:
        if self.min_baseline_windows > self.baseline_windows:
            raise _problem(
                "min_baseline_windows",
                "should be from 2 to baseline_windows ({windows}), got {got}",
                windows=self.baseline_windows,
                got=self.min_baseline_windows,
            )
        return self

    @property
    def gap_s(self) -> float:
        """An interval between two readings of a point longer than this is a gap."""
        return self.gap_after_s if self.gap_after_s is not None else self.window_s / 2

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], *, base_dir: Path | None = None) -> AnalysisConfig:
        """Validate a parsed ``[analysis]`` table; relative paths are taken from ``base_dir``.
        Raises ``AnalysisConfigError`` with every problem, the first in its message."""
        config, problems = parse_analysis(table, base_dir=base_dir)
        if config is None:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise AnalysisConfigError(f"{problems[0]}{more}", problems)
        return config


_ADAPTER: TypeAdapter[AnalysisConfig] | None = None


def parse_analysis(
    table: Mapping[str, Any], *, base_dir: Path | None = None, path: str = "analysis"
) -> tuple[AnalysisConfig | None, list[Problem]]:
    """The settings of ``table``, or None and every problem, each under ``path``."""
    global _ADAPTER
    if _ADAPTER is None:
        _ADAPTER = TypeAdapter(AnalysisConfig)
    if not isinstance(table, Mapping):
        return None, [Problem(path, "should be a table ([analysis])")]
    try:
        config = _ADAPTER.validate_python(dict(table), context={"base_dir": base_dir})
    except ValidationError as exc:
        return None, [_hint(problem, path) for problem in problems_of(exc.errors(), (path,))]
    return config, []


def _hint(problem: Problem, section: str) -> Problem:
    """An unknown key of the section itself, with the known key it is closest to."""
    import difflib

    key = problem.path.removeprefix(f"{section}.")
    if "." in key or "[" in key or not problem.message.startswith("unknown setting"):
        return problem
    match = difflib.get_close_matches(key, sorted(AnalysisConfig.__dataclass_fields__), n=1)
    if not match:
        return problem
    return Problem(problem.path, f"unknown setting (did you mean `{match[0]}`?)")
