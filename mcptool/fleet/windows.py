"""When a device's window closes, decided from the readings alone (sans-IO).

Windows are aligned to multiples of ``window_s`` in Unix time, like the analysis's. A
window of ``(node, device)`` closes when a reading of a later window arrives; the link
delivers each node's readings once and in order, so whichever hub holds the node's
session sees the same sequence and closes the same windows. The tracker keeps, per
device, the open window and the stream sequence numbers of its first and last reading;
a hub that takes over a node seeds it from the last reading stored for that device
(:func:`OpenWindow.from_headers`), so a failover neither loses nor invents a window.

A closed window is published *before* the reading that closed it is stored: should the
hub die in between, the node resends the reading, the next hub closes the same window
again, and JetStream drops the second copy by its message id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from mcptool.fleet.subjects import HEADER_FIRST, HEADER_WINDOW

__all__ = ["ClosedWindow", "OpenWindow", "Placement", "WindowTracker", "window_index"]


def window_index(ts: float, window_s: float) -> int:
    return math.floor(ts / window_s)


@dataclass(frozen=True, slots=True)
class OpenWindow:
    index: int
    first: int  # stream sequence of its first reading
    last: int  # and of its last

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | None, seq: int) -> OpenWindow | None:
        """The window of the stored reading ``seq`` with these headers (None: not a reading)."""
        if not headers or HEADER_WINDOW not in headers:
            return None
        try:
            index = int(headers[HEADER_WINDOW])
            first = int(headers.get(HEADER_FIRST, seq))
        except ValueError:
            return None
        return cls(index, first, seq)


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
    """Open windows per ``(node, device)`` of one hub (soft state, seeded from the stream)."""

    def __init__(self, window_s: float) -> None:
        if not window_s > 0:
            raise ValueError("window_s must be above 0")
        self.window_s = window_s
        self._open: dict[tuple[str, str], OpenWindow | None] = {}

    def known(self, node: str, device: str) -> bool:
        return (node, device) in self._open

    def seed(self, node: str, device: str, window: OpenWindow | None) -> None:
        """What the stream says is open (None: no reading of this device stored yet)."""
        self._open[(node, device)] = window

    def forget(self, node: str) -> None:
        """The node left this hub: the next hub may move its windows on meanwhile."""
        for key in [key for key in self._open if key[0] == node]:
            del self._open[key]

    def place(self, node: str, device: str, ts: float) -> Placement:
        index = window_index(ts, self.window_s)
        current = self._open.get((node, device))
        headers = {HEADER_WINDOW: str(index)}
        if current is None:
            return Placement(index, headers, None)
        if index <= current.index:
            # A late reading is filed under the open window, so the stream's last reading
            # still names that window for a hub that seeds from it; workers analyse a
            # window's readings by their own time, so it is stored but not analysed.
            headers = {HEADER_WINDOW: str(current.index), HEADER_FIRST: str(current.first)}
            return Placement(current.index, headers, None, late=index < current.index)
        closed = ClosedWindow(
            node, device, current.index, self.window_s, current.first, current.last
        )
        return Placement(index, headers, closed)

    def stored(self, node: str, device: str, placement: Placement, seq: int) -> None:
        """The reading of ``placement`` was stored as stream sequence ``seq``."""
        current = self._open.get((node, device))
        if current is not None and current.index == placement.index:
            self._open[(node, device)] = OpenWindow(current.index, current.first, seq)
        else:
            self._open[(node, device)] = OpenWindow(placement.index, seq, seq)
