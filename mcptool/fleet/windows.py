"""When a device's window closes, decided from the readings and the time (sans-IO).

Windows are aligned to multiples of ``window_s`` in Unix time, like the analysis's. A
window of ``(node, device)`` closes when a reading of a later window arrives, or, for a
device that went silent, when :meth:`WindowTracker.tick` finds it past its deadline:
``grace_s`` after the later of the window's end and the moment its last reading was
stored (so a backlog a gateway replays after an outage, old readings arriving fast, is
not cut short: only silence on arrival closes a window by time). The link
delivers each node's readings once and in order, so whichever hub holds the node's
session sees the same sequence and closes the same windows. The tracker keeps, per
device, the open window and the stream sequence numbers of its first and last reading;
a hub that takes over a node seeds it from the last reading stored for that device
(:func:`OpenWindow.from_headers`), so a failover neither loses nor invents a window.

A closed window is published *before* the reading that closed it is stored: should the
hub die in between, the node resends the reading, the next hub closes the same window
again, and JetStream drops the second copy by its message id.

A reading of a window that has already closed is *late*: it is stored (nothing is lost)
but not analysed (its window's finding is decided; a second one would contradict it).
After a close by time no window is open; a late reading then carries the header
``Mcp-Window-Closed`` (the newest closed index), so a hub seeding from it knows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from mcptool.fleet.subjects import HEADER_CLOSED, HEADER_FIRST, HEADER_WINDOW

__all__ = [
    "DEFAULT_GRACE_S",
    "ClosedWindow",
    "OpenWindow",
    "Placement",
    "WindowTracker",
    "closed_index",
    "window_index",
]

# Longer than the gateway's longest pause between two polls of a dead device (its
# backoff caps at 30 s) and a link's reconnect, short enough that a technician hears of
# a silent device within a minute of its last window.
DEFAULT_GRACE_S = 30.0


def window_index(ts: float, window_s: float) -> int:
    return math.floor(ts / window_s)


@dataclass(frozen=True, slots=True)
class OpenWindow:
    index: int
    first: int  # stream sequence of its first reading
    last: int  # and of its last
    at: float | None = None  # when its last reading was stored (Unix s), if known

    @classmethod
    def from_headers(
        cls, headers: Mapping[str, str] | None, seq: int, at: float | None = None
    ) -> OpenWindow | None:
        """The window of the stored reading ``seq`` with these headers (None: not a
        reading, or a late one stored while no window was open)."""
        if not headers or HEADER_WINDOW not in headers or HEADER_CLOSED in headers:
            return None
        try:
            index = int(headers[HEADER_WINDOW])
            first = int(headers.get(HEADER_FIRST, seq))
        except ValueError:
            return None
        return cls(index, first, seq, at)


def closed_index(headers: Mapping[str, str] | None) -> int | None:
    """The newest closed window a late reading's headers name (None: no such header)."""
    try:
        return int((headers or {})[HEADER_CLOSED])
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A unit of work: analyse the readings ``first..last`` of this device's subject."""

    node: str
    device: str
    index: int
    window_s: float
    first: int
    last: int

    @property
    def start(self) -> float:
        return self.index * self.window_s

    @property
    def end(self) -> float:
        return (self.index + 1) * self.window_s

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "start": self.start, "end": self.end}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ClosedWindow:
        return cls(
            node=str(data["node"]),
            device=str(data["device"]),
            index=int(data["index"]),  # type: ignore[call-overload]
            window_s=float(data["window_s"]),  # type: ignore[arg-type]
            first=int(data["first"]),  # type: ignore[call-overload]
            last=int(data["last"]),  # type: ignore[call-overload]
        )


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a new reading goes: its window, the headers to store it with, and the
    window it closes (to publish before the reading), if any."""

    index: int
    headers: dict[str, str]
    closes: ClosedWindow | None
    late: bool = False  # a reading of a window that already closed: stored, not analysed


class WindowTracker:
    """Open windows per ``(node, device)`` of one hub (soft state, seeded from the stream).

    Time comes in as arguments (``stored(..., at=)``, ``tick(now)``), Unix seconds of the
    hub's clock; nothing here reads a clock.
    """

    def __init__(self, window_s: float, grace_s: float = DEFAULT_GRACE_S) -> None:
        if not window_s > 0:
            raise ValueError("window_s must be above 0")
        if not grace_s >= 0:
            raise ValueError("grace_s must be 0 or more")
        self.window_s = window_s
        self.grace_s = grace_s
        self._open: dict[tuple[str, str], OpenWindow | None] = {}
        self._closed: dict[tuple[str, str], int] = {}  # newest closed window index

    def known(self, node: str, device: str) -> bool:
        return (node, device) in self._open

    def seed(
        self, node: str, device: str, window: OpenWindow | None, closed: int | None = None
    ) -> None:
        """What the stream says: the open window (None: none) and the newest window known
        closed (by time, on this hub or another)."""
        key = (node, device)
        if closed is not None:
            self._closed[key] = closed
            if window is not None and window.index <= closed:
                window = None  # closed by time after its last reading was stored
        else:
            self._closed.pop(key, None)
        self._open[key] = window

    def clear(self) -> None:
        """Forget every device: another process may have moved them all on."""
        self._open.clear()
        self._closed.clear()

    def forget(self, node: str) -> None:
        """The node left this hub: the next hub may move its windows on meanwhile."""
        for key in [key for key in self._open if key[0] == node]:
            del self._open[key]
            self._closed.pop(key, None)

    def place(self, node: str, device: str, ts: float) -> Placement:
        index = window_index(ts, self.window_s)
        current = self._open.get((node, device))
        closed = self._closed.get((node, device))
        headers = {HEADER_WINDOW: str(index)}
        if current is None:
            if closed is not None and index <= closed:
                # its window was closed by time and none is open: stored, not analysed
                late = {HEADER_WINDOW: str(index), HEADER_CLOSED: str(closed)}
                return Placement(index, late, None, late=True)
            return Placement(index, headers, None)
        if index <= current.index:
            # A late reading is filed under the open window, so the stream's last reading
            # still names that window for a hub that seeds from it; workers analyse a
            # window's readings by their own time, so it is stored but not analysed.
            headers = {HEADER_WINDOW: str(current.index), HEADER_FIRST: str(current.first)}
            return Placement(current.index, headers, None, late=index < current.index)
        closes = ClosedWindow(
            node, device, current.index, self.window_s, current.first, current.last
        )
        return Placement(index, headers, closes)

    def stored(
        self, node: str, device: str, placement: Placement, seq: int, at: float | None = None
    ) -> None:
        """The reading of ``placement`` was stored as stream sequence ``seq`` at ``at``."""
        key = (node, device)
        current = self._open.get(key)
        if current is not None and seq <= current.last:
            return  # a duplicate of a reading the window holds (JetStream kept the first)
        if placement.closes is not None:
            self._closed[key] = placement.closes.index
        if current is not None and current.index == placement.index:
            self._open[key] = OpenWindow(current.index, current.first, seq, at)
        elif current is None and placement.late:
            return  # no window open: it stays so
        else:
            self._open[key] = OpenWindow(placement.index, seq, seq, at)

    def deadline(self, window: OpenWindow) -> float:
        """When ``window`` closes by time if no later reading arrives first."""
        end = (window.index + 1) * self.window_s
        return max(end, window.at if window.at is not None else end) + self.grace_s

    def tick(self, now: float) -> list[ClosedWindow]:
        """Close every open window whose deadline is ``now`` or past (its device went
        silent) and return them, each once. A hub publishes them like any closed window
        (after checking the stream: another hub may have stored more meanwhile)."""
        due = []
        for (node, device), window in self._open.items():
            if window is not None and self.deadline(window) <= now:
                due.append(ClosedWindow(
                    node, device, window.index, self.window_s, window.first, window.last
                ))  # fmt: skip
        for closed in due:
            self._open[(closed.node, closed.device)] = None
            self._closed[(closed.node, closed.device)] = closed.index
        return due

    def reopen(self, window: ClosedWindow) -> None:
        """``tick`` closed ``window`` but it could not be published: due again at once."""
        key = (window.node, window.device)
        if self._open.get(key) is None and self._closed.get(key) == window.index:
            self._open[key] = OpenWindow(window.index, window.first, window.last)
            del self._closed[key]
