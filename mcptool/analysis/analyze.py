"""The ``analyze`` request: one window of readings, given whole, explained on demand.

A node (or a technician's script) sends a window of a device's readings and gets back
the finding the analysis makes of it: the same statistics and triggers, the same prompt,
the same model (or router: critical windows to the bigger model first) and the same
checks (schema, one repair, grounding, severity floor and ceiling) as a window the
gateway closes itself. The window is judged as it is: every window is analysed, and the
thresholds are the points' own (the statistical rules need a history a single window
does not have).

The request's data (docs/LINK.md, "The analyze action")::

    {"device": "boiler-1", "description": "gas boiler, 90 kW",
     "points": [{"name": "supply_temperature", "unit": "°C", "above": 85,
                 "severity": "critical"}],
     "readings": [{"time": 1700000000.0, "values": {"supply_temperature": 97.4}}]}

``parse_window`` checks it and names every problem with its path
(``data.readings[3].time: should be a finite number, got 'x'``); ``analyze`` runs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from mcptool.analysis.analyzer import PointInfo, WindowReport
from mcptool.analysis.backlog import Backlog
from mcptool.analysis.config import AnalysisConfig, ThresholdRule
from mcptool.analysis.model import AnalysisModel
from mcptool.analysis.pipeline import AnalysisPipeline
from mcptool.analysis.prompting import Prompts
from mcptool.analysis.stats import DeviceWindow
from mcptool.numbers import config_number
from mcptool.problems import Problem, problems_of

__all__ = ["MAX_POINTS", "MAX_READINGS", "Outcome", "WindowRequest", "analyze", "parse_window"]

MAX_POINTS = 64
MAX_READINGS = 2000  # far more than a 16-KiB REQUEST holds; bounds the work, not the frame

_STRICT = ConfigDict(extra="forbid")
Name = Annotated[str, Strict(), Field(min_length=1, max_length=128, pattern=r"\S")]
Note = Annotated[str, Strict(), Field(max_length=500)]
Unit = Annotated[str, Strict(), Field(max_length=32)]
Limit = Annotated[float, Strict(), config_number()]


def _value(value: Any) -> bool | float | None:
    """A reading: a finite number, true or false (a bit), or null (a failed read)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    raise PydanticCustomError(
        "custom_problem",
        "should be a number, true, false or null (a failed read), got {got}",
        {"got": repr(value)[:40]},
    )


Value = Annotated[Any, BeforeValidator(_value)]


def _count(low: int, high: int, what: str) -> BeforeValidator:
    """A list or object of ``low`` to ``high`` entries, checked before its entries are
    (a list of 100,000 readings costs one ``len``), and never echoed back whole."""

    def check(value: Any) -> Any:
        if isinstance(value, list | dict) and not low <= len(value) <= high:
            raise PydanticCustomError(
                "custom_problem",
                "should hold {low} to {high} {what}, got {n}",
                {"low": low, "high": high, "what": what, "n": len(value)},
            )
        return value

    return BeforeValidator(check)


@dataclass(frozen=True, slots=True, config=_STRICT)
class PointSpec:
    """A point of the window: its unit, what it is, and the limits someone set on it."""

    name: Name
    unit: Unit = ""
    description: Note = ""
    above: Limit | None = None
    below: Limit | None = None
    severity: Literal["warning", "critical"] = "warning"


@dataclass(frozen=True, slots=True, config=_STRICT)
class Reading:
    """One poll: its Unix time in seconds and each point's value (null: a failed read)."""

    time: Annotated[float, Strict(), config_number(gt=0)]
    values: Annotated[dict[Name, Value], _count(1, MAX_POINTS, "values")]


@dataclass(frozen=True, slots=True, config=_STRICT)
class WindowRequest:
    """The ``analyze`` request's data."""

    device: Name
    readings: Annotated[list[Reading], _count(1, MAX_READINGS, "readings")]
    description: Note = ""
    points: Annotated[list[PointSpec], _count(0, MAX_POINTS, "points")] = dataclasses.field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _known_points(self) -> WindowRequest:
        names = [p.name for p in self.points]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise PydanticCustomError(
                    "custom_problem", "point {name} is given twice", {"key": "points", "name": name}
                )
        if names:
            for i, reading in enumerate(self.readings):
                for point in reading.values:
                    if point not in names:
                        raise PydanticCustomError(
                            "custom_problem",
                            "{point} is not one of the window's points ({names})",
                            {"key": f"readings[{i}].values.{point}", "point": point,
                             "names": ", ".join(names)},
                        )  # fmt: skip
        return self

    @property
    def start(self) -> float:
        return min(r.time for r in self.readings)

    @property
    def end(self) -> float:
        """One reading interval after the last reading (N readings 1 s apart span N s)."""
        times = sorted(r.time for r in self.readings)
        step = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 1.0
        return times[-1] + (step or 1.0)

    def infos(self) -> list[PointInfo]:
        given = {p.name: p for p in self.points}
        names = dict.fromkeys([*given, *(n for r in self.readings for n in r.values)])
        discrete = {n for r in self.readings for n, v in r.values.items() if isinstance(v, bool)}
        return [
            PointInfo(
                name,
                given[name].unit if name in given else "",
                given[name].description if name in given else "",
                name in discrete,
            )
            for name in names
        ]

    def thresholds(self) -> tuple[ThresholdRule, ...]:
        # rules match shell patterns: a point called "t[1]" must match only itself
        return tuple(
            ThresholdRule(point=glob.escape(p.name), above=p.above, below=p.below,
                          severity=p.severity)
            for p in self.points
            if p.above is not None or p.below is not None
        )  # fmt: skip


_ADAPTER: TypeAdapter[WindowRequest] | None = None


def parse_window(data: Any) -> tuple[WindowRequest | None, list[Problem]]:
    """The request's window, or None and every problem, each with its path under ``data``."""
    global _ADAPTER
    if _ADAPTER is None:
        _ADAPTER = TypeAdapter(WindowRequest)
    if not isinstance(data, Mapping):
        return None, [Problem("data", "should be an object with device, points and readings")]
    try:
        window = _ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        # a problem quotes the value it is about: a 10-KB string is quoted in part
        problems = problems_of(exc.errors(), ("data",))
        return None, [Problem(p.path, _cut(p.message)) for p in problems]
    return window, []


def _cut(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What became of the window: a status code (200: the model's finding), a one-line
    message, and the record(s) to send back."""

    code: int
    message: str
    data: dict[str, Any]


async def analyze(
    window: WindowRequest,
    *,
    config: AnalysisConfig,
    model: AnalysisModel,
    prompts: Prompts | None = None,
    timeout_s: float = 25.0,
) -> Outcome:
    """The model's finding for ``window`` (200), or why there is none: 502 the answer
    stayed invalid or was refused, 503 no model could answer (with the statistics
    finding), 504 no answer within ``timeout_s``."""
    start, end = window.start, window.end
    settings = dataclasses.replace(
        config,
        window_s=end - start,
        every_window=True,  # the window was sent to be explained
        cooldown_s=0.0,
        min_call_interval_s=0.0,
        offline_after_s=None,
        thresholds=window.thresholds(),
        queue_path=None,
        max_in_flight=1,
        request_timeout_s=min(config.request_timeout_s, timeout_s),
        routes=(),
    )
    decided: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    triggers: list[dict[str, Any]] = []

    async def sink(record: dict[str, Any]) -> None:
        kind, source = record.get("type"), record.get("source")
        if kind == "trigger":
            triggers.append(record)
        if decided.done():
            return
        if kind == "finding" and source == "model":
            decided.set_result(Outcome(200, "OK", {"model": record["model"], "finding": record}))
        elif kind == "finding":  # a statistics finding: no route could answer
            decided.set_result(
                Outcome(503, f"no model finding: {record.get('reason')}", {"finding": record})
            )
        elif kind == "analysis_error":
            decided.set_result(Outcome(502, str(record.get("reason")), {"error": record}))

    pipeline = AnalysisPipeline(
        settings,
        sink=sink,
        model=model,
        prompts=prompts,
        backlog=Backlog(None, 1),
        preload=False,  # the hub loaded it at start
    )
    infos = window.infos()
    pipeline.add_device(window.device, infos, window.description)
    pipeline.take([_judge(pipeline, window, infos, start, end)])
    async with pipeline:
        try:
            async with asyncio.timeout(timeout_s):
                return await decided
        except TimeoutError:
            return Outcome(
                504,
                f"no model answered within {timeout_s:g} s; ask again later",
                {"triggers": triggers},
            )


def _judge(
    pipeline: AnalysisPipeline,
    window: WindowRequest,
    infos: Sequence[PointInfo],
    start: float,
    end: float,
) -> WindowReport:
    """The window's statistics and triggers, over exactly [start, end): not aligned to
    multiples of its length as the gateway's windows are, since it is given whole."""
    config = pipeline.config
    open_window = DeviceWindow(
        window.device,
        end - start,
        config.gap_s,
        {i.name: i.unit for i in infos},
        {i.name: i.discrete for i in infos},
    )
    open_window.start, open_window.end = start, end  # the one window the readings fill
    for reading in sorted(window.readings, key=lambda r: r.time):
        open_window.add(reading.time, reading.values)
    stats = open_window.close()
    events, usual = pipeline.analyzer.triggers.evaluate(stats)
    return WindowReport(stats, tuple(events), usual)
