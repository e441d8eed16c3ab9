"""The analysis pipeline: readings in, trigger events and findings out to a sink.

``observe`` is synchronous and cheap (the gateway calls it for every poll); a window
that closes with triggers becomes a job in the durable backlog, and worker tasks (at
most ``max_in_flight``, calls at least ``min_call_interval_s`` apart) ask the model,
the most severe job first, then the oldest. While the model is busy or down, jobs stay
in the backlog and a statistics-only finding is published for each, so the technician
still hears about the window; the model's finding follows when it answers. A finding
leaves the backlog only after the sink accepted it.

Records handed to the sink (``async def sink(record: dict)``) have a ``type``:
``trigger`` (a rule fired), ``finding`` (``source`` model or statistics),
``analysis_error`` (an answer that stayed invalid after one repair, or a request the
model refused), ``backlog_dropped`` (the backlog was full and dropped its oldest job).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from mcptool.analysis.analyzer import Analyzer, WindowReport
from mcptool.analysis.backlog import Backlog, BacklogError, Job
from mcptool.analysis.config import AnalysisConfig
from mcptool.analysis.findings import (
    Finding,
    InvalidAnswer,
    finding_schema,
    involved,
    parse_answer,
    rank,
    severity_ceiling,
    severity_floor,
    statistics_finding,
    window_statistics,
    worst,
)
from mcptool.analysis.grounding import ungrounded
from mcptool.analysis.metrics import LatencyHistogram
from mcptool.analysis.model import (
    AnalysisModel,
    ModelAnswer,
    ModelRejected,
    ModelUnavailable,
    asking_about,
)
from mcptool.analysis.prompting import Prompts
from mcptool.analysis.triggers import signature
from mcptool.backoff import Backoff

__all__ = ["AnalysisPipeline", "Sink"]

log = logging.getLogger(__name__)

Sink = Callable[[dict[str, Any]], Awaitable[None]]

_MAX_BACKOFF_S = 60.0


class AnalysisPipeline:
    """Statistics, triggers, model calls and publishing, for a gateway or a hub."""

    def __init__(
        self,
        config: AnalysisConfig,
        *,
        sink: Sink,
        model: AnalysisModel | None,
        prompts: Prompts | None = None,
        backlog: Backlog | None = None,
        clock: Callable[[], float] = time.time,
        preload: bool = True,
    ) -> None:
        self.config = config
        # False for a pipeline per window (the hub's analyze, a fleet worker): the model
        # was loaded once by its owner, and a router's preload would load every route
        self._preload_model = preload
        self.sink = sink
        self.model = model
        self.prompts = prompts if prompts is not None else Prompts.load(config.prompts_dir)
        self.backlog = (
            backlog if backlog is not None else Backlog(config.queue_path, config.queue_max)
        )
        self._backlog_at_close: int | None = None
        self.analyzer = Analyzer(config)
        self.clock = clock
        self.counters: dict[str, int] = dict.fromkeys(
            ("windows", "windows_triggered", "trigger_events", "model_calls", "repairs",
             "findings_model", "findings_statistics", "invalid_answers", "suppressed",
             "backlog_dropped", "sink_errors", "model_unavailable", "model_rejected",
             "ungrounded", "severity_raised", "severity_lowered"),
            0,
        )  # fmt: skip
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._in_flight: set[int] = set()
        self._sending = False
        self._tasks: list[asyncio.Task[None]] = []
        self._last_call = -float("inf")
        self._call_lock = asyncio.Lock()
        self._resume_at = 0.0
        # The project's one backoff, doubling from retry_after_s: many gateways that lost
        # one shared Ollama must not all come back in the same second (the jitter).
        self._retry = Backoff(
            initial=config.retry_after_s or 1.0,
            multiplier=2.0,
            maximum=max(_MAX_BACKOFF_S, config.retry_after_s),
        )
        self._down_reason: str | None = None
        self._recent: dict[str, tuple[frozenset[tuple[str, str]], float]] = {}
        self._data_now = 0.0
        self.latency = LatencyHistogram()
        self.findings_by_model: Counter[str] = Counter()
        self._arrival: float | None = None

    # -- set-up and life cycle -------------------------------------------------------
    def add_device(self, device: str, points: Iterable[Any] = (), description: str = "") -> None:
        """Declare a device's points (register-map ``Point``s or ``PointInfo``s)."""
        self.analyzer.add_device(device, points, description)

    async def start(self) -> AnalysisPipeline:
        if self._tasks:
            return self
        self._tasks.append(asyncio.create_task(self._publisher(), name="analysis-publisher"))
        self._tasks.append(asyncio.create_task(self._ticker(), name="analysis-ticker"))
        if self.model is not None:
            if self._preload_model:
                self._tasks.append(asyncio.create_task(self._preload(), name="analysis-preload"))
            for i in range(self.config.max_in_flight):
                self._tasks.append(asyncio.create_task(self._worker(), name=f"analysis-{i}"))
        if len(self.backlog):
            self._wake.set()
            if self.model is None:
                for job in self.backlog.pending():
                    self._statistics_for(job, "no model configured")
                    self.backlog.remove(job.id)
        return self

    async def close(self) -> None:
        """Stop: open windows are judged as they are, flagged ones join the backlog for
        the next start, and each gets its statistics finding now, saying so."""
        reports = self.analyzer.flush()
        if reports:
            self._handle(reports)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.model is not None:
            for job in self.backlog.pending():
                if not job.statistics_sent:
                    self._statistics_for(job, self._stopped_reason())
        while not self._outbox.empty():  # hand over what was already decided
            await self._send(self._outbox.get_nowait())
        self._backlog_at_close = len(self.backlog)  # for stats() once the file is closed
        self.backlog.close()

    async def __aenter__(self) -> AnalysisPipeline:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def model_down(self) -> str | None:
        """Why the model cannot be asked right now, or None when it answers."""
        return self._down_reason

    def stats(self) -> dict[str, int]:
        """Counters, the backlog's length and the calls in flight (also after ``close``)."""
        backlog = self._backlog_at_close
        if backlog is None:
            backlog = len(self.backlog)
        return {**self.counters, "backlog": backlog, "in_flight": len(self._in_flight)}

    async def wait_idle(self) -> None:
        """Until the backlog is empty and every record was handed to the sink."""
        while len(self.backlog) or not self._outbox.empty() or self._in_flight or self._sending:
            self._idle.clear()
            await self._idle.wait()

    # -- input (synchronous, the gateway's hot path) ---------------------------------
    def observe(self, device: str, t: float, values: Mapping[str, Any]) -> None:
        """One poll of ``device`` read at Unix time ``t`` (point name -> value)."""
        self._arrived(t)
        reports = self.analyzer.observe(device, t, values)
        if reports:
            self._handle(reports)

    def observe_failure(self, device: str, t: float) -> None:
        """A poll of ``device`` failed at ``t``."""
        self._arrived(t)
        reports = self.analyzer.observe_failure(device, t)
        if reports:
            self._handle(reports)

    def _arrived(self, t: float) -> None:
        self._arrival = self.clock()
        if t > self._data_now:
            self._data_now = t

    def now(self) -> float:
        """The analysis clock: the newest reading's time plus the time since it arrived.

        Live, that is the wall clock. When a spool or a link replays an hour of old
        readings after an outage, it follows the data, so the replay neither closes
        windows early nor makes every device look offline; when nothing arrives at all,
        it runs on like the wall clock, so silent devices are still noticed.
        """
        wall = self.clock()
        if self._arrival is None:
            return wall
        return self._data_now + (wall - self._arrival)

    def tick(self, now: float | None = None) -> None:
        """Close windows that are over and notice silent devices (the ticker calls this)."""
        reports = self.analyzer.tick(self.now() if now is None else now)
        if reports:
            self._handle(reports)

    def take(self, reports: Iterable[WindowReport]) -> None:
        """Windows judged elsewhere (an ``analyze`` request's window, given whole), handled
        like the analyzer's own: triggers out, flagged ones to the model."""
        self._handle(reports)

    # -- windows to jobs ---------------------------------------------------------------
    def _handle(self, reports: Iterable[WindowReport]) -> None:
        for report in reports:
            self.counters["windows"] += 1
            if not report.events:
                continue
            self.counters["windows_triggered"] += 1
            self._enqueue(report)

    def _enqueue(self, report: WindowReport) -> None:
        window = report.window
        device = window.device
        sig = signature(report.events)
        last = self._recent.get(device)
        # the same rules on the same points again soon: the model would only repeat itself
        # every_window too: a routine window costs a call at most once per cooldown_s
        # (cooldown_s = 0 asks about every window)
        suppressed = (
            last is not None and last[0] == sig and window.end - last[1] < self.config.cooldown_s
        )
        for event in report.events:
            self.counters["trigger_events"] += 1
            self._emit({"type": "trigger", **event.as_dict(), "model_call": not suppressed})
        if suppressed:
            self.counters["suppressed"] += 1
            return
        self._recent[device] = (sig, window.end)
        info = self.analyzer.point_info(device)
        names = list(dict.fromkeys([*window.points, *info]))
        prompt = self.prompts.window_prompt(
            window, report.events, info, report.usual, self.analyzer.description(device)
        )
        data = {
            "device": device,
            "window": {"start": window.start, "end": window.end},
            "triggers": [e.as_dict() for e in report.events],
            "statistics": window_statistics(window),
            "point_names": names,
            "messages": [
                {"role": "system", "content": self.prompts.system},
                {"role": "user", "content": prompt},
            ],
            "schema": finding_schema(names),
            # the backlog serves the worst windows first (a boiler breach must not wait
            # behind older warnings while a slow model works through them)
            "rank": rank(worst(e.severity for e in report.events)),
        }
        if self.model is None:
            self._statistics_from(data, "no model configured")
            return
        try:
            dropped_jobs = self.backlog.push(device, window.start, data)
        except BacklogError as exc:
            # a full disk must not stop the analysis (the ticker would die with it): the
            # window is lost, and said so like any other dropped window
            self.counters["backlog_dropped"] += 1
            log.error("%s: window of %s dropped; free disk space", exc, device)
            self._emit(
                {
                    "type": "backlog_dropped",
                    "device": device,
                    "window": data["window"],
                    "reason": f"{exc}: window dropped; free disk space",
                }
            )
            return
        for dropped in dropped_jobs:
            self.counters["backlog_dropped"] += 1
            self._emit(
                {
                    "type": "backlog_dropped",
                    "device": dropped.device,
                    "window": dropped.data["window"],
                    "reason": f"analysis backlog full ({self.config.queue_max} windows): "
                    "dropped the oldest; raise analysis.queue_max or add model capacity",
                }
            )
        if self._down_reason is not None:
            for pending in self.backlog.pending():
                if not pending.statistics_sent:
                    self._statistics_for(pending, self._queued_reason())
        self._wake.set()

    def _stopped_reason(self) -> str:
        if self.backlog.path is None:
            return (
                "analysis stopped before the model answered; the backlog is in memory, so "
                "no model finding will follow: set analysis.queue_path"
            )
        return (
            "analysis stopped before the model answered; the window is kept in "
            f"{self.backlog.path} and the model's finding follows at the next start"
        )

    def _queued_reason(self) -> str:
        return f"model unavailable: {self._down_reason}; window queued for analysis"

    # -- publishing --------------------------------------------------------------------
    def _emit(self, record: dict[str, Any]) -> None:
        self._outbox.put_nowait(record)

    def _statistics_from(self, data: Mapping[str, Any], reason: str) -> None:
        window = data["window"]
        finding = statistics_finding(
            data["device"], window["start"], window["end"], data["triggers"],
            data["statistics"], reason,
        )  # fmt: skip
        self.counters["findings_statistics"] += 1
        self._emit(finding.as_dict())

    def _statistics_for(self, job: Job, reason: str) -> None:
        if self.config.statistics_findings:
            self._statistics_from(job.data, reason)
        self.backlog.mark_statistics_sent(job.id)
        job.statistics_sent = True

    async def _send(self, record: dict[str, Any]) -> bool:
        try:
            await self.sink(record)
        except Exception as exc:  # the sink is the gateway's: keep analysing whatever it does
            self.counters["sink_errors"] += 1
            log.warning("analysis sink failed for a %s record: %s", record.get("type"), exc)
            return False
        return True

    async def _publisher(self) -> None:
        while True:
            record = await self._outbox.get()
            self._sending = True
            try:
                await self._send(record)
            finally:
                self._sending = False
            if self._outbox.empty():
                self._idle.set()

    async def _ticker(self) -> None:
        period = min(1.0, self.config.window_s / 4)
        while True:
            await asyncio.sleep(period)
            self.tick()

    # -- model calls -------------------------------------------------------------------
    async def _preload(self) -> None:
        """Load the model now, so the first anomaly does not wait for a cold load (tens of
        seconds on a small box); best effort: a failure shows at the first real call."""
        preload = getattr(self.model, "preload", None)
        if preload is None:
            return
        try:
            await preload()
        except Exception as exc:  # only a hint: the real calls report failures properly
            log.info("could not preload the model: %s", exc)

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = self._resume_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._wake.clear()
            job = self.backlog.next(exclude=self._in_flight)
            if job is None:
                self._idle.set()
                await self._wake.wait()
                continue
            self._in_flight.add(job.id)
            try:
                await self._run(job)
            except Exception:  # a bug must not stop the analysis; the job stays queued
                log.exception("analysis of %s failed", job.device)
                self._pause(max(1.0, self.config.retry_after_s))
            finally:
                self._in_flight.discard(job.id)
                self._idle.set()

    def _pause(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._resume_at = max(self._resume_at, loop.time() + seconds)

    async def _run(self, job: Job) -> None:
        if job.finding is None:
            finding = await self._analyse(job)
            if finding is None:
                return
            self.backlog.store_finding(job.id, finding.as_dict())
            record = finding.as_dict()
        else:
            record = job.finding
        if await self._send(record):
            if record.get("source") == "model":
                self.counters["findings_model"] += 1
                self.findings_by_model[str(record.get("model"))] += 1
            self.backlog.remove(job.id)
        else:
            self._pause(self.config.retry_after_s)

    async def _ask(
        self, messages: list[dict[str, str]], schema: dict[str, Any], severity: str
    ) -> ModelAnswer:
        assert self.model is not None
        async with self._call_lock:  # spaces call starts; calls themselves may overlap
            loop = asyncio.get_running_loop()
            wait = self._last_call + self.config.min_call_interval_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_call = loop.time()
        self.counters["model_calls"] += 1
        try:
            # the window's severity rides along: a router asks a bigger model first about
            # critical windows (model.asking_about)
            async with asyncio.timeout(self.config.request_timeout_s):
                with asking_about(severity):
                    return await self.model.ask(messages, schema)
        except TimeoutError:
            raise ModelUnavailable(
                f"no answer within analysis.request_timeout_s = {self.config.request_timeout_s:g}"
            ) from None

    async def _analyse(self, job: Job) -> Finding | None:
        """The model's finding for ``job``, or None (job kept, or reported and removed)."""
        data = job.data
        messages = list(data["messages"])
        schema = data["schema"]
        severity = worst(str(t.get("severity")) for t in data["triggers"])
        self.backlog.mark_attempt(job.id)
        started = time.monotonic()
        try:
            answer = await self._ask(messages, schema, severity)
            repaired = False
            try:
                result = parse_answer(answer.text, schema)
                invented = self._invented(result, messages)
                if invented:
                    raise InvalidAnswer(
                        f"it quotes {', '.join(invented)}, which the window does not contain;"
                        " quote only numbers given in the statistics",
                        answer.text,
                    )
            except InvalidAnswer as first:
                self.counters["repairs"] += 1
                repair = self.prompts.repair_prompt(first.reason, data["point_names"])
                messages += [
                    {"role": "assistant", "content": answer.text},
                    {"role": "user", "content": repair},
                ]
                answer = await self._ask(messages, schema, severity)
                repaired = True
                result = parse_answer(answer.text, schema)
        except ModelUnavailable as exc:
            self._unavailable(str(exc) or type(exc).__name__)
            return None
        except (InvalidAnswer, ModelRejected) as exc:
            self._give_up(job, exc)
            return None
        self._available()
        self.latency.observe(time.monotonic() - started)
        window = data["window"]
        timings = {
            **answer.timings,
            "wall_ms": round((time.monotonic() - started) * 1000, 1),
            "queued_ms": round(max(0.0, self.clock() - window["end"]) * 1000, 1),
        }
        invented = self._invented(result, messages)
        if invented:
            self.counters["ungrounded"] += 1
        floor = severity_floor(data["triggers"])
        ceiling = severity_ceiling(data["triggers"])
        severity = result["severity"]
        if rank(severity) < rank(floor):
            severity = floor
            self.counters["severity_raised"] += 1
        elif rank(severity) > rank(ceiling):
            severity = ceiling
            self.counters["severity_lowered"] += 1
        changed = severity != result["severity"]
        return Finding(
            device=data["device"],
            window_start=window["start"],
            window_end=window["end"],
            severity=severity,
            summary=result["summary"],
            suspected_causes=tuple(result["suspected_causes"]),
            recommended_actions=tuple(result["recommended_actions"]),
            points=tuple(result["points"]),
            source="model",
            model=answer.model,
            timings=timings,
            triggers=tuple(data["triggers"]),
            statistics=involved(
                data["statistics"],
                result["points"],
                (p for t in data["triggers"] for p in t.get("points", ())),
            ),
            repaired=repaired,
            model_severity=result["severity"] if changed else None,
            ungrounded=tuple(invented),
        )

    @staticmethod
    def _invented(result: Mapping[str, Any], messages: list[dict[str, str]]) -> list[str]:
        """Numbers the answer quotes that its window prompt does not hold."""
        prompt = next((m["content"] for m in messages if m["role"] == "user"), "")
        texts = [result["summary"], *result["suspected_causes"], *result["recommended_actions"]]
        return ungrounded(texts, prompt)

    def _give_up(self, job: Job, exc: Exception) -> None:
        invalid = isinstance(exc, InvalidAnswer)
        self.counters["invalid_answers" if invalid else "model_rejected"] += 1
        reason = (
            f"model answer invalid after one repair: {exc}"
            if invalid
            else f"model refused the request: {exc}"
        )
        self._emit(
            {
                "type": "analysis_error",
                "device": job.device,
                "window": job.data["window"],
                "model": getattr(self.model, "name", None),
                "reason": reason,
                "answer": exc.raw[:500] if isinstance(exc, InvalidAnswer) else None,
            }
        )
        if not job.statistics_sent:
            self._statistics_for(job, reason)
        self.backlog.remove(job.id)

    def _unavailable(self, reason: str) -> None:
        self.counters["model_unavailable"] += 1
        first = self._down_reason is None
        self._down_reason = reason
        if first:
            log.warning("model unavailable, windows wait in the backlog: %s", reason)
        for job in self.backlog.pending():
            if not job.statistics_sent:
                self._statistics_for(job, self._queued_reason())
        first = self._retry.attempts == 0
        delay = self._retry.next_delay()
        self._pause(0.0 if first and not self.config.retry_after_s else delay)

    def _available(self) -> None:
        if self._down_reason is not None:
            log.info("model answers again; working through %d queued windows", len(self.backlog))
        self._down_reason = None
        self._retry.reset()
