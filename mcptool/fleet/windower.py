"""A device's readings into ``FLEET_DATA`` with their window headers, and the windows they
close into ``FLEET_WINDOWS``: the IO around :class:`mcptool.fleet.windows.WindowTracker`.

Both ways into the fleet drive one: the hub, for what nodes deliver over the link, and the
MQTT bridge, for what gateways publish to NATS's MQTT listener (:mod:`mcptool.fleet.bridge`).
A window closes when a later reading of its device is stored, or when its device has been
silent past the deadline (``tick``). Every closed window is published with the message id
``window:<node>/<device>@<index>``, so whichever hub closes it, and however often, it is
queued once (within the stream's duplicate window).

The tracker is soft state: a device it does not know is seeded from the stream, the last
stored reading (its window headers and when it was stored) and the newest window known
closed (the device's last queued window and last finding), so a hub that takes a device
over neither loses a window nor closes one a second time. A window due by time is checked
against the stream before it is published: another hub may have stored more of it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from nats.js.api import PubAck, RawStreamMsg

from mcptool.fleet.subjects import (
    DATA_STREAM,
    FINDINGS_STREAM,
    MSG_ID,
    WINDOWS_STREAM,
    data_subject,
    finding_subject,
    window_id,
    window_subject,
)
from mcptool.fleet.windows import ClosedWindow, OpenWindow, Placement, WindowTracker, closed_index

__all__ = ["Windower"]

log = logging.getLogger(__name__)

# (subject, body, headers, is a reading) -> JetStream's acknowledgement
Publish = Callable[[str, bytes, dict[str, str], bool], Awaitable[PubAck]]
# (stream, subject) -> the subject's last message in the stream, None if it has none
Last = Callable[[str, str], Awaitable[RawStreamMsg | None]]


def _stored_at(message: RawStreamMsg) -> float | None:
    return message.time.timestamp() if message.time is not None else None


def _index_in(message: RawStreamMsg | None, field: str) -> int | None:
    if message is None:
        return None
    try:
        value = json.loads(message.data or b"").get(field)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Windower:
    def __init__(
        self,
        tracker: WindowTracker,
        publish: Publish,
        last: Last,
        *,
        clock: Callable[[], float] = time.time,
        on_closed: Callable[[ClosedWindow, bool], None] | None = None,
        on_late: Callable[[], None] | None = None,
    ) -> None:
        self.tracker = tracker
        self._publish = publish
        self._last = last
        self._clock = clock
        self._on_closed = on_closed  # (window, closed by time)
        self._on_late = on_late
        self.closed = 0  # windows published
        self.closed_by_time = 0
        self.late = 0  # readings stored after their window closed

    async def store(
        self,
        node: str,
        device: str,
        ts: float,
        body: bytes,
        headers: Mapping[str, str],
        context: Mapping[str, str] | None = None,
    ) -> tuple[PubAck, Placement]:
        """Store a reading of ``device`` taken at ``ts`` (Unix s), after the window it
        closes. ``context`` (trace headers) goes on that window too."""
        if not self.tracker.known(node, device):
            await self.seed(node, device)
        placement = self.tracker.place(node, device, ts)
        if placement.closes is not None:
            await self._queue(placement.closes, context or {}, by_time=False)
        ack = await self._publish(
            data_subject(node, device), body, {**headers, **placement.headers}, True
        )
        if placement.late:
            self.late += 1
            if self._on_late is not None:
                self._on_late()
        # a duplicate's seq is the first copy's: ours after a retry, or one the tracker
        # already holds (it says so by the seq)
        self.tracker.stored(node, device, placement, ack.seq, at=self._clock())
        return ack, placement

    async def seed(self, node: str, device: str) -> None:
        self.tracker.seed(node, device, *await self._from_stream(node, device))

    async def adopt(self, node: str, devices: list[str]) -> None:
        """Seed the devices of a node this hub has just taken over that it does not know
        yet, so that a silent one's last window closes here by time too."""
        for device in devices:
            if not self.tracker.known(node, device):
                state = await self._from_stream(node, device)
                if not self.tracker.known(node, device):  # no reading of it came meanwhile
                    self.tracker.seed(node, device, *state)

    async def _from_stream(self, node: str, device: str) -> tuple[OpenWindow | None, int | None]:
        """The device's open window and newest closed window index, by the stream."""
        last = await self._last(DATA_STREAM, data_subject(node, device))
        window = closed = None
        if last is not None and last.seq is not None:
            window = OpenWindow.from_headers(last.headers, last.seq, _stored_at(last))
            closed = closed_index(last.headers)
        known = [i for i in (closed, await self.closed_through(node, device)) if i is not None]
        return window, max(known) if known else None

    async def closed_through(self, node: str, device: str) -> int | None:
        """The newest window of the device queued or analysed: its last message on the
        work queue (until a worker acks it) and its last finding (published before that
        ack), so one of them names a window closed by time whatever the moment."""
        queued = _index_in(await self._last(WINDOWS_STREAM, window_subject(node, device)), "index")
        found = _index_in(
            await self._last(FINDINGS_STREAM, finding_subject(node, device)), "window_index"
        )
        known = [i for i in (queued, found) if i is not None]
        return max(known) if known else None

    async def tick(self) -> list[ClosedWindow]:
        """Publish the windows of devices silent past their deadline; returns them."""
        published = []
        due = self.tracker.tick(self._clock())
        for at, window in enumerate(due):
            try:
                if not await self._still_due(window):
                    continue
                await self._queue(window, {}, by_time=True)
            except Exception:
                for left in due[at:]:
                    self.tracker.reopen(left)  # the next tick tries again
                raise
            self.closed_by_time += 1
            published.append(window)
        return published

    async def _still_due(self, window: ClosedWindow) -> bool:
        """Whether the stream agrees that ``window`` is closed by time here and not yet
        queued; if another hub stored more of the device, the tracker takes its word."""
        node, device = window.node, window.device
        last = await self._last(DATA_STREAM, data_subject(node, device))
        if last is not None and last.seq is not None:
            stored = OpenWindow.from_headers(last.headers, last.seq, _stored_at(last))
            moved = stored is not None and (
                stored.index > window.index
                or (stored.index == window.index and stored.last != window.last)
            )
            if moved:
                await self.seed(node, device)
                return False
        closed = await self.closed_through(node, device)
        return closed is None or closed < window.index

    async def _queue(
        self, window: ClosedWindow, context: Mapping[str, str], *, by_time: bool
    ) -> None:
        headers = {**context, MSG_ID: window_id(window.node, window.device, window.index)}
        subject = window_subject(window.node, window.device)
        await self._publish(subject, json.dumps(window.to_json()).encode(), headers, False)
        self.closed += 1
        if self._on_closed is not None:
            self._on_closed(window, by_time)
