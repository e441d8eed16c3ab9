"""A hub's side of the fleet: store what nodes deliver in JetStream before the ACK.

The hub is stateless: the stream is the ledger. Each DATA frame is published with the
message id ``node:seq`` and acknowledged to the node only once JetStream confirmed it
(replicated to a quorum of the stream's peers). A node that loses its hub resends from
its last ACK to another hub, which asks the stream for the node's resume point (the seq
of its last stored frame) before it lets the node in, and JetStream's duplicate window
drops whatever both hubs stored. Readings (poll messages) also move the device's windows
on (:mod:`mcptool.fleet.windower`); a closed window goes to the work queue of the workers,
and a device silent past its window's deadline has that window closed by the hub's clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck, RawStreamMsg
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind

from mcptool.fleet import tracing
from mcptool.fleet.metrics import IngestMetrics
from mcptool.fleet.streams import StreamSettings, ensure_streams
from mcptool.fleet.subjects import (
    DATA_STREAM,
    HEADER_NODE,
    HEADER_SEQ,
    MSG_ID,
    data_subject,
    device_of,
    event_subject,
    node_data_filter,
    node_devices_filter,
    reading_id,
)
from mcptool.fleet.windower import Windower
from mcptool.fleet.windows import DEFAULT_GRACE_S, ClosedWindow, WindowTracker

__all__ = ["FleetIngest", "StoreFailed", "poll_of"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class StoreFailed(Exception):
    """JetStream did not confirm a frame within the deadline: do not acknowledge it."""


class Poll(NamedTuple):
    device: str
    ts: float  # seconds
    traceparent: str | None  # W3C trace context of a gateway that traces its polls


def telemetry_of(body: bytes) -> dict[str, Any] | None:
    """The JSON object of a telemetry poll message, or None for any other frame."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("kind") != "telemetry":
        return None
    return message


def poll_of(body: bytes) -> Poll | None:
    """The device, time and trace context of a telemetry poll message, or None for any
    other frame."""
    message = telemetry_of(body)
    return None if message is None else poll_in(message)


def poll_in(message: dict[str, Any]) -> Poll | None:
    """:func:`poll_of` for a message already parsed by :func:`telemetry_of`."""
    device, ts = message.get("device"), message.get("ts")
    if not isinstance(device, str) or not isinstance(ts, int | float) or isinstance(ts, bool):
        return None
    traceparent = message.get("traceparent")
    return Poll(device, float(ts) / 1000.0, traceparent if isinstance(traceparent, str) else None)


async def retry(call: Callable[[], Awaitable[T]], deadline_s: float) -> T:
    """``call()`` again until it succeeds or ``deadline_s`` passed (StoreFailed then).

    Every write of the fleet is idempotent by its message id (and an ack twice is an
    ack), so a retry after a lost answer stores nothing twice. While a NATS server dies
    and the streams elect new leaders, requests time out or find no responder for a few
    seconds: holding on that long beats dropping every node (or window) in hand.
    """
    deadline = time.monotonic() + deadline_s
    pause = 0.05
    while True:
        try:
            return await call()
        except NotFoundError:
            raise
        except Exception as exc:  # timeouts, no responders, reconnecting
            if time.monotonic() + pause > deadline:
                raise StoreFailed(f"JetStream did not answer: {exc!r}") from exc
            log.info("JetStream not answering (%r), retrying", exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)


async def connect(servers: Sequence[str], name: str, deadline_s: float = 5.0) -> Client:
    """A client that reconnects forever, to whichever server of the list answers; the
    first connection must succeed within ``deadline_s`` (ConnectionError otherwise)."""
    connected = False
    last: list[str] = ["no answer"]
    holder: list[Client] = []

    async def error(exc: Exception) -> None:
        # One line, not the client's default traceback: a server going away is news
        # for the log, not a bug. Before the first connection it is the caller's answer.
        last[0] = str(exc) or type(exc).__name__
        if connected:
            log.warning("NATS: %s", last[0])

    async def disconnected() -> None:
        if connected and not (holder and (holder[0].is_closed or holder[0].is_draining)):
            log.warning("NATS: disconnected, reconnecting")

    async def reconnected() -> None:
        log.warning("NATS: reconnected")

    try:
        client = await asyncio.wait_for(
            nats.connect(
                servers=list(servers),
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                connect_timeout=2,
                allow_reconnect=True,
                error_cb=error,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
            ),
            deadline_s,
        )
    except TimeoutError:
        raise ConnectionError(
            f"no NATS server answered within {deadline_s:g} s: {last[0]}"
        ) from None
    connected = True
    holder.append(client)
    return client


class FleetIngest:
    """``await ingest.commit(node, frames)`` stores frames; raise means do not ACK."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        window_s: float = 10.0,
        grace_s: float = DEFAULT_GRACE_S,
        settings: StreamSettings | None = None,
        publish_deadline_s: float = 10.0,
        name: str = "mcptool-hub",
    ) -> None:
        self.servers = list(servers)
        self.settings = settings or StreamSettings()
        self.windows = WindowTracker(window_s, grace_s)
        self.windower = Windower(
            self.windows,
            lambda subject, body, headers, frame: self._publish(
                subject, body, headers, frame=frame
            ),
            self.last_message,
            on_closed=self.count_window,
            on_late=lambda: self.metrics.late.inc(),
        )
        self.publish_deadline_s = publish_deadline_s
        self.name = name
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.metrics = IngestMetrics()
        self.stored = 0
        self.duplicates = 0
        self.windows_closed = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> FleetIngest:
        self.nc = await connect(self.servers, self.name)
        self.js = self.nc.jetstream(timeout=2.0)
        await ensure_streams(self.js, self.settings)
        self._ticker = asyncio.ensure_future(self._tick_forever())
        return self

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.nc is not None:
            await self.nc.close()
            self.nc = None

    async def __aenter__(self) -> FleetIngest:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the hub's hooks ---------------------------------------------------------------
    async def resume_point(self, node: str) -> int:
        """The seq of the last frame of ``node`` the stream holds (0: none).

        Asked before a node's session is accepted, on every hub: another hub may have
        stored more of this node since this one last saw it. Its windows are re-read
        from the stream for the same reason.
        """
        self.windows.forget(node)
        self._background(self._adopt(node), "reading the devices of a node")
        try:
            message = await self._retry(
                lambda: self._js.get_last_msg(DATA_STREAM, node_data_filter(node))
            )
        except NotFoundError:
            return 0
        headers = message.headers or {}
        try:
            return int(headers.get(HEADER_SEQ, 0))
        except ValueError:
            return 0

    async def commit(self, node: str, frames: Sequence[tuple[int, bytes]]) -> None:
        """Store each frame (in order); returns once JetStream confirmed them all."""
        started = time.perf_counter()
        exemplar = None  # the first traced frame's trace names the batch's time
        try:
            for seq, body in frames:
                exemplar = await self._store(node, seq, body) or exemplar
        except BaseException:
            # What was published of a window may be ahead of this memory: re-read it.
            self.windows.forget(node)
            self.metrics.failures.inc()
            raise
        finally:
            self.metrics.latency.observe(time.perf_counter() - started, exemplar)

    def event(self, node: str, body: dict[str, Any]) -> None:
        """Store an EVENT, best effort: the link does not acknowledge events either."""
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers = {HEADER_NODE: node}
        self._background(
            self._retry(lambda: self._js.publish(event_subject(node), payload, headers=headers)),
            "an EVENT was not stored",
        )

    def _background(self, work: Awaitable[object], failure: str) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)  # type: ignore[arg-type]

        def done(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.warning("%s: %s", failure, task.exception())

        task.add_done_callback(done)

    async def _adopt(self, node: str) -> None:
        """Know every device the stream holds readings of for ``node`` (taken over by
        this hub): a silent one's open window then closes here by time."""
        info = await self._retry(
            lambda: self._js.stream_info(DATA_STREAM, subjects_filter=node_devices_filter(node))
        )
        devices = [device_of(subject) for subject in info.state.subjects or {}]
        await self.windower.adopt(node, devices)

    # -- storing -----------------------------------------------------------------------
    @property
    def _js(self) -> JetStreamContext:
        if self.js is None:
            raise RuntimeError("start() the ingest first")
        return self.js

    async def _store(self, node: str, seq: int, body: bytes) -> dict[str, str] | None:
        """Store one frame under its ``fleet.store`` span; the span's recorded trace as an
        exemplar (None: not traced). Inside the span, log lines and metrics name it."""
        headers = {MSG_ID: reading_id(node, seq), HEADER_NODE: node, HEADER_SEQ: str(seq)}
        poll = poll_of(body)
        parent = tracing.context_of({"traceparent": poll.traceparent}) if poll else None
        attributes = {"mcp.node": node, "mcp.seq": seq}
        with tracing.tracer().start_as_current_span(
            "fleet.store", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            if poll is None:
                await self._publish(data_subject(node, None), body, tracing.inject(headers))
                return tracing.exemplar()
            span.set_attribute("mcp.device", poll.device)
            context = tracing.inject({})  # this span's traceparent, when tracing
            headers.update(context)
            _, placement = await self.windower.store(
                node, poll.device, poll.ts, body, headers, context
            )
            if placement.closes is not None:
                span.set_attribute("fleet.window_closed", placement.closes.index)
            return tracing.exemplar()

    # -- closing windows by time -------------------------------------------------------
    async def _tick_forever(self) -> None:
        """Close the windows of silent devices, about once a second (finer for a grace
        shorter than a few seconds)."""
        period = min(1.0, max(0.05, self.windows.grace_s / 4))
        while True:
            await asyncio.sleep(period)
            try:
                await self.windower.tick()
            except Exception as exc:  # the stream is moving: the next tick tries again
                log.warning("closing silent devices' windows: %r", exc)

    def count_window(self, window: ClosedWindow, by_time: bool) -> None:
        self.windows_closed += 1
        exemplar = tracing.exemplar()  # a reading's store span closed it (none: by time)
        self.metrics.windows.inc(exemplar=exemplar)
        if by_time:
            self.metrics.windows_by_time.inc()

    async def last_message(self, stream: str, subject: str) -> RawStreamMsg | None:
        """The last message of ``subject`` in ``stream`` (None: it has none)."""
        try:
            return await self._retry(lambda: self._js.get_last_msg(stream, subject))
        except NotFoundError:
            return None

    async def _publish(
        self, subject: str, body: bytes, headers: dict[str, str], *, frame: bool = True
    ) -> PubAck:
        ack: PubAck = await self._retry(lambda: self._js.publish(subject, body, headers=headers))
        if not frame:
            return ack
        # called inside the frame's store span: its trace is the exemplar and ends the line
        exemplar = tracing.exemplar()
        if ack.duplicate:
            self.duplicates += 1
            self.metrics.duplicates.inc(exemplar=exemplar)
            log.info("%s already stored (a resend): not stored again", headers.get(MSG_ID))
        else:
            self.stored += 1
            self.metrics.stored.inc(exemplar=exemplar)
        return ack

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        # a node connection held for a leader election beats a reconnect storm
        return await retry(call, self.publish_deadline_s)
