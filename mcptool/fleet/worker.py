"""An analysis worker: closed windows from the work queue in, one finding per window out.

Every worker binds to the one durable pull consumer ``workers`` of ``FLEET_WINDOWS``
(explicit ack): a window is handed to one worker at a time, a worker that dies leaves
its windows unacknowledged and JetStream gives them to another after ``ack_wait``, and
``max_in_flight`` bounds what one worker takes at once. A window is analysed with the
analysis pipeline (:class:`mcptool.analysis.AnalysisPipeline`, ``every_window`` on, so
one model call per window) on the readings the stream holds for it, and its record is
published with the message id ``finding:<node>/<device>@<index>`` *before* the window is
acknowledged: a worker that dies in between costs a second model call on redelivery,
never a second finding (JetStream drops the second publish by its id). Each device's
baseline lives in the cluster (``mcptool.fleet.baselines``): a window is judged against
the device's past windows whichever worker analysed them, and takes the baseline
forward after its finding is stored and before it is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind

from mcptool.analysis import (
    AnalysisConfig,
    AnalysisModel,
    AnalysisPipeline,
    ModelAnswer,
    OllamaModel,
    PointInfo,
    Prompts,
    analyse_poll,
    points_of,
)
from mcptool.fleet import tracing
from mcptool.fleet.baselines import BaselineStore, Loaded, StateOf
from mcptool.fleet.ingest import connect, retry
from mcptool.fleet.metrics import WorkerMetrics
from mcptool.fleet.streams import StreamSettings, ensure_consumer, ensure_streams
from mcptool.fleet.subjects import (
    DATA_STREAM,
    MSG_ID,
    WINDOWS_STREAM,
    WORKERS,
    data_subject,
    finding_id,
    finding_subject,
)
from mcptool.fleet.windows import ClosedWindow, window_index

__all__ = ["Analysed", "FleetWorker", "analysis_config"]

log = logging.getLogger(__name__)


def analysis_config(
    ollama_url: str, model: str, window_s: float, overrides: Mapping[str, Any] | None = None
) -> AnalysisConfig:
    """The pipeline's settings for one window: every window analysed, calls not spaced
    (the queue and ``max_in_flight`` pace them), no offline rule (a worker sees closed
    windows, not the clock); the baseline comes from the cluster."""
    table: dict[str, Any] = {
        "ollama": ollama_url,
        "model": model,
        "window_s": window_s,
        "every_window": True,
        "min_call_interval_s": 0,
        "cooldown_s": 0,
        "offline_after_s": False,
        "statistics_findings": False,
    }
    table.update(overrides or {})
    return AnalysisConfig.from_dict(table)


class _Asked:
    """The worker's model seen by a one-window pipeline: a span and a timing per call."""

    def __init__(self, model: AnalysisModel, name: str, metrics: WorkerMetrics) -> None:
        self.model = model
        self.name = name
        self.metrics = metrics

    async def ask(
        self, messages: Sequence[Mapping[str, str]], schema: Mapping[str, Any]
    ) -> ModelAnswer:
        with tracing.tracer().start_as_current_span(
            "analysis.model_call",
            kind=SpanKind.CLIENT,
            attributes={"gen_ai.request.model": self.name},
        ):
            started = time.perf_counter()
            try:
                return await self.model.ask(messages, schema)
            finally:  # timed as .time() would, and naming the call's trace (an exemplar)
                elapsed = time.perf_counter() - started
                self.metrics.model_latency.observe(elapsed, tracing.exemplar())


@dataclass(frozen=True, slots=True)
class Analysed:
    """A window's record, and how to take the window into its device's baseline (after
    the record is stored: a worker that dies before leaves that to the redelivery)."""

    record: dict[str, Any]
    advance: Callable[[], Awaitable[str]] | None = None


def _published(record: Mapping[str, Any], duplicate: bool) -> str:
    """What the log says of a window's record once JetStream holds it."""
    if duplicate:
        return "already published (a redelivered window)"
    kind = record.get("type")
    if kind == "finding":
        return f"finding published (severity {record.get('severity')})"
    return f"{kind} published ({record.get('reason', '')})"


async def _discard(record: dict[str, Any]) -> None:
    """The sink of a pipeline that only replays statistics."""


class FleetWorker:
    def __init__(
        self,
        servers: Sequence[str],
        ollama_url: str,
        *,
        model: str = "llama3.2",
        max_in_flight: int = 1,
        settings: StreamSettings | None = None,
        analysis: Mapping[str, Any] | None = None,
        window_timeout_s: float = 60.0,
        deadline_s: float = 15.0,
        name: str = "mcptool-worker",
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.servers = list(servers)
        self.ollama_url = ollama_url
        self.model_name = model
        self.max_in_flight = max_in_flight
        self.settings = settings or StreamSettings()
        self.overrides = dict(analysis or {})
        self.window_timeout_s = window_timeout_s
        self.deadline_s = deadline_s
        self.name = name
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.model: OllamaModel | None = None
        self.baselines: BaselineStore | None = None
        # advanced, kept (a redelivered or older window), too_large
        self.baseline_outcomes: Counter[str] = Counter()
        self.prompts = Prompts.load(None)
        self.metrics = WorkerMetrics()
        self.analysed = 0
        self.duplicates = 0
        self.retried = 0
        self._configs: dict[float, AnalysisConfig] = {}
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> FleetWorker:
        self.nc = await connect(self.servers, self.name)
        self.js = self.nc.jetstream(timeout=5.0)
        await ensure_streams(self.js, self.settings)
        await ensure_consumer(self.js, self.settings)
        self.baselines = await BaselineStore.open(self.js, self.settings, self.deadline_s)
        self.model = OllamaModel.connect(self.ollama_url, self._config(10.0))
        with contextlib.suppress(Exception):  # a hint only: each call reports failures
            await asyncio.wait_for(self.model.preload(), 10)
        return self

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.model is not None:
            await self.model.aclose()
        if self.nc is not None:
            await self.nc.close()
            self.nc = None

    async def __aenter__(self) -> FleetWorker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _config(self, window_s: float) -> AnalysisConfig:
        config = self._configs.get(window_s)
        if config is None:
            config = analysis_config(self.ollama_url, self.model_name, window_s, self.overrides)
            self._configs[window_s] = config
        return config

    # -- the loop ----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Take windows until ``stop`` is set (or forever)."""
        assert self.js is not None, "start() the worker first"
        subscription = await self.js.pull_subscribe_bind(WORKERS, stream=WINDOWS_STREAM)
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await self._slots.acquire()
            free = 1
            while free < self.max_in_flight and not self._slots.locked():
                await self._slots.acquire()
                free += 1
            try:
                messages = await subscription.fetch(free, timeout=1.0)
            except Exception:  # nothing to do (timeout) or the server is moving: ask again
                messages = []
            for message in messages:
                free -= 1
                task = asyncio.ensure_future(self._handle(message))
                self._tasks.add(task)
                task.add_done_callback(self._done)
            for _ in range(free):
                self._slots.release()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("window failed: %r", task.exception())

    async def _handle(self, message: Msg) -> None:
        try:
            window = ClosedWindow.from_json(json.loads(message.data))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("dropping a malformed window message: %s", exc)
            await message.term()
            return
        keepalive = asyncio.ensure_future(self._in_progress(message))
        self.metrics.in_flight.inc()
        try:
            analysed = await asyncio.wait_for(self.work(window), self.window_timeout_s)
        except Exception as exc:
            # The model is down or slow, or the stream is moving: another try later, by
            # whichever worker takes it.
            self.retried += 1
            self.metrics.retries.inc()
            log.warning("window %s/%s@%d: %r, retried later", window.node, window.device,
                        window.index, exc)  # fmt: skip
            with contextlib.suppress(Exception):
                await message.nak(delay=2.0)
            return
        finally:
            keepalive.cancel()
            self.metrics.in_flight.dec()
        js = self.js
        assert js is not None
        record = analysed.record
        traceparent = record.pop("traceparent", None)
        parent = tracing.context_of({"traceparent": traceparent}) if traceparent else None
        body = json.dumps(record, separators=(",", ":")).encode()
        subject = finding_subject(window.node, window.device)
        with tracing.tracer().start_as_current_span(
            "fleet.finding", context=parent, kind=SpanKind.PRODUCER,
            attributes={"fleet.finding": str(record.get("id"))},
        ):  # fmt: skip
            headers = tracing.inject({MSG_ID: finding_id(window.node, window.device, window.index)})
            # Retried through a leader election: a lost finding or ack would otherwise
            # cost a redelivery after ack_wait (the finding is idempotent by id, so is
            # the ack).
            ack = await retry(lambda: js.publish(subject, body, headers=headers), self.deadline_s)
            # in the span: the line and the metrics name the window's trace
            exemplar = tracing.exemplar()
            log.info("%s: %s", record.get("id"), _published(record, ack.duplicate))
        if ack.duplicate:
            self.duplicates += 1
            self.metrics.duplicates.inc(exemplar=exemplar)
        elif record.get("type") == "finding":
            self.metrics.findings.labels(str(record.get("severity"))).inc(exemplar=exemplar)
        if analysed.advance is not None:
            # Fails (the window is not acked, so redelivered) rather than lose the window
            # from the baseline: the finding is stored, so a second one is dropped.
            outcome = await analysed.advance()
            self.baseline_outcomes[outcome] += 1
            self.metrics.baselines.labels(outcome).inc()
        self.metrics.windows.labels(str(record.get("type"))).inc(exemplar=exemplar)
        self.analysed += 1
        await retry(message.ack_sync, self.deadline_s)

    async def _in_progress(self, message: Msg) -> None:
        """Tell JetStream the window is still being worked on (a slow model is not a dead
        worker), so only a worker that died has its windows redelivered."""
        period = max(0.5, self.settings.ack_wait_s / 3)
        while True:
            await asyncio.sleep(period)
            with contextlib.suppress(Exception):
                await message.in_progress()

    # -- one window --------------------------------------------------------------------
    async def readings(self, window: ClosedWindow) -> list[dict[str, Any]]:
        """The poll messages of ``window``: its device's stored readings ``first..last``
        whose own time falls in the window (a late reading of an older one does not).
        Each keeps the trace context it was stored with under ``traceparent``."""
        assert self.js is not None
        subject = data_subject(window.node, window.device)
        polls = []
        seq = window.first
        while seq <= window.last:
            fetch = functools.partial(
                self.js.get_msg, DATA_STREAM, seq=seq, subject=subject, next=True
            )
            try:
                stored = await retry(fetch, self.deadline_s)
            except NotFoundError:
                break
            if stored.seq is None or stored.seq > window.last:
                break
            seq = stored.seq + 1
            try:
                poll = json.loads(stored.data or b"")
            except ValueError:
                continue
            ts = float(poll.get("ts", 0)) / 1000.0
            if window_index(ts, window.window_s) == window.index:
                traceparent = (stored.headers or {}).get("traceparent")
                polls.append({**poll, "traceparent": traceparent} if traceparent else poll)
        return polls

    async def analyse(self, window: ClosedWindow) -> dict[str, Any]:
        """The record of ``window``: the model's finding, an analysis error, or a note
        that the window had nothing to analyse."""
        return (await self.work(window)).record

    async def work(self, window: ClosedWindow) -> Analysed:
        """The record of ``window`` (as :meth:`analyse`) and its baseline's advance."""
        assert self.model is not None
        started = time.monotonic()
        polls = await self.readings(window)
        # The window continues the trace of its first reading and links the others.
        contexts = [{"traceparent": p["traceparent"]} for p in polls if "traceparent" in p]
        parent = tracing.context_of(contexts[0]) if contexts else None
        links = [link for c in contexts[1:] if (link := tracing.link_of(c)) is not None]
        with tracing.tracer().start_as_current_span(
            "fleet.window",
            context=parent,
            links=links,
            kind=SpanKind.CONSUMER,
            attributes={"mcp.node": window.node, "mcp.device": window.device,
                        "fleet.window": window.index, "fleet.readings": len(polls)},
        ):  # fmt: skip
            return await self._analyse(window, polls, started)

    async def _analyse(
        self, window: ClosedWindow, polls: list[dict[str, Any]], started: float
    ) -> Analysed:
        assert self.model is not None and self.baselines is not None
        base = {
            "id": finding_id(window.node, window.device, window.index),
            "node": window.node,
            "window_index": window.index,
            "readings": len(polls),
        }
        outcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def sink(record: dict[str, Any]) -> None:
            kind = record.get("type")
            decided = kind == "analysis_error" or (
                kind == "finding" and record.get("source") == "model"
            )
            if decided and not outcome.done():
                outcome.set_result(record)

        loaded = await self.baselines.load(window.node, window.device, window.window_s)
        model = _Asked(self.model, self.model_name, self.metrics)
        pipeline, loaded = self._continued(window, polls, loaded, sink, model)
        device = f"{window.node}/{window.device}"
        state_of = functools.partial(pipeline.analyzer.state, device)
        advance = None
        if polls:
            advance = functools.partial(self._advance, window, polls, loaded, state_of)
        if not len(pipeline.backlog):
            pipeline.backlog.close()
            return Analysed({**base, "type": "no_finding", "device": window.device,
                             "reason": "no good reading in the window"}, advance)  # fmt: skip
        async with pipeline:
            record = await outcome
        _, _, name = str(record.get("device", device)).partition("/")
        return Analysed({**record, **base, "device": name or window.device,
                         "worker_ms": round((time.monotonic() - started) * 1000, 1),
                         "trace_id": tracing.trace_id(),
                         "traceparent": tracing.inject({}).get("traceparent")},
                        advance)  # fmt: skip

    def _continued(
        self,
        window: ClosedWindow,
        polls: list[dict[str, Any]],
        loaded: Loaded,
        sink: Callable[[dict[str, Any]], Awaitable[None]],
        model: AnalysisModel | None,
    ) -> tuple[AnalysisPipeline, Loaded]:
        """A pipeline that continued the device's baseline (``loaded``; without it if it
        cannot be restored) with the window's polls, the window closed."""
        assert self.baselines is not None
        pipeline = AnalysisPipeline(
            self._config(window.window_s),
            sink=sink,
            model=model,
            prompts=self.prompts,
            preload=False,  # loaded once at the worker's start
        )
        device = f"{window.node}/{window.device}"
        points: dict[str, PointInfo] = {}
        for poll in polls:  # declared before the restore (analyse_poll would start it afresh)
            for point in points_of(poll):
                points.setdefault(point.name, point)
        pipeline.add_device(device, points.values())
        if loaded.stored is not None:
            try:
                pipeline.analyzer.restore(device, loaded.stored.state)
            except ValueError as exc:
                loaded = self.baselines.refuse(loaded, str(exc))
        for poll in polls:
            analyse_poll(pipeline, {**poll, "device": device})
        pipeline.tick(window.end + window.window_s)  # the window is over: close it
        return pipeline, loaded

    async def _advance(
        self,
        window: ClosedWindow,
        polls: list[dict[str, Any]],
        loaded: Loaded,
        state_of: StateOf,
    ) -> str:
        assert self.baselines is not None

        def replay(newer: Loaded) -> tuple[StateOf, Loaded]:
            # another worker advanced the baseline meanwhile: the window's statistics
            # again on top of it (no model call; the finding stands as it was judged)
            pipeline, newer = self._continued(window, polls, newer, _discard, None)
            pipeline.backlog.close()
            device = f"{window.node}/{window.device}"
            return functools.partial(pipeline.analyzer.state, device), newer

        keep = self._config(window.window_s).baseline_windows
        return await self.baselines.advance(
            loaded, window.index, window.window_s, keep, state_of, replay
        )
