"""Exactly-once, in-order delivery of DATA frames over a link that may break.

The sender keeps every frame until the receiver acknowledges it (cumulative ACKs) and
sends the unacknowledged ones again after a reconnect; the receiver remembers, per node,
the last sequence number it delivered and drops anything at or below it. See docs/LINK.md
("Delivery") for the resume rule that makes this hold across restarts of either end.
"""

from __future__ import annotations

import base64
import json
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class OutboxFull(Exception):
    """The sender's buffer is full: wait for acknowledgements (backpressure)."""


@dataclass(slots=True)
class Pending:
    """One frame the sender holds until it is acknowledged."""

    msg_id: int
    body: bytes
    seq: int = 0  # 0: not numbered yet (sequence numbers start at 1)


class Outbox:
    """The sender's side: numbering, the in-flight window and the resume rule.

    ``msg_id`` is the application's handle, stable for the outbox's lifetime; ``seq`` is
    the wire number, given when a frame is first sent, because only then does the sender
    know where the receiver's count stands (after the resume ACK of the first session).
    """

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError("outbox capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[Pending] = deque()
        self._next_msg_id = 1
        self.next_seq = 0  # 0 until the first resume point is known
        self.sent = 0  # how many of the oldest items went out on the current connection

    def __len__(self) -> int:
        return len(self._items)

    @property
    def in_flight(self) -> int:
        return self.sent

    @property
    def has_unsent(self) -> bool:
        return self.sent < len(self._items)

    def push(self, body: bytes) -> int:
        if len(self._items) >= self.capacity:
            raise OutboxFull(f"{self.capacity} frames are waiting for acknowledgement")
        msg_id = self._next_msg_id
        self._next_msg_id += 1
        self._items.append(Pending(msg_id, body))
        return msg_id

    def take(self, limit: int) -> Iterator[Pending]:
        """Mark up to ``limit`` unsent frames as sent (numbering them) and yield them."""
        items = self._items
        end = min(len(items), self.sent + limit)
        for index in range(self.sent, end):
            item = items[index]
            if not item.seq:
                item.seq = self.next_seq
                self.next_seq += 1
            yield item
        self.sent = end

    def acknowledge(self, seq: int) -> int:
        """Drop every frame numbered at or below ``seq``; the last dropped msg_id, or 0."""
        items = self._items
        last = 0
        while items and items[0].seq and items[0].seq <= seq:
            last = items.popleft().msg_id
            self.sent -= 1
        if self.sent < 0:
            # The peer acknowledged frames this connection had not sent yet, which cannot
            # happen for a well-behaved peer; never let the count go negative.
            self.sent = 0
        return last

    def connection_lost(self) -> None:
        """Everything unacknowledged goes out again on the next connection."""
        self.sent = 0

    def resume(self, last_delivered: int, first_session: bool) -> int:
        """Apply the receiver's resume point; returns the last msg_id it acknowledged (or 0).

        On the first session of this outbox, or when the receiver is ahead of anything
        this outbox ever numbered (another incarnation of this node sent those), the
        pending frames are (re)numbered from ``last_delivered + 1``: they are new data,
        and numbering them at or below the receiver's count would get them dropped as
        duplicates. Otherwise the resume point is an ordinary cumulative ACK.
        """
        self.sent = 0
        if first_session or last_delivered >= self.next_seq:
            self.next_seq = last_delivered + 1
            for item in self._items:
                item.seq = 0
            return 0
        return self.acknowledge(last_delivered)

    def oldest_seq(self) -> int:
        return self._items[0].seq if self._items else 0


class Ledger(Protocol):
    """The receiver's memory: per node, the last sequence number delivered."""

    def last(self, node_id: str) -> int: ...

    def advance(self, node_id: str, seq: int) -> None: ...


class MemoryLedger:
    """A ledger that lives as long as the process (enough when the hub is not restarted)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def last(self, node_id: str) -> int:
        return self._last.get(node_id, 0)

    def advance(self, node_id: str, seq: int) -> None:
        self._last[node_id] = seq

    def snapshot(self) -> dict[str, int]:
        return dict(self._last)


class JournalLedger(MemoryLedger):
    """A ledger whose memory is a journal of the delivered frames themselves (JSON Lines).

    Each delivered frame is one line ``{"node", "seq", "data"}``; at start the last seq
    per node is read back from the file. Because the line *is* the delivery, a hub
    killed at any moment is exactly-once across the restart: what is in the journal is
    not delivered again, and what is not in it was never acknowledged (the hub calls
    :meth:`flush` before it writes the ACK). A torn last line is cut off at start.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.fsync = fsync
        self.recovered = 0
        if self.path.exists():
            self._recover()
        self._file = self.path.open("ab")

    def _recover(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
                node, seq = str(record["node"]), int(record["seq"])
            except (ValueError, KeyError, TypeError):
                continue
            self.recovered += 1
            if seq > self._last.get(node, 0):
                self._last[node] = seq
        if end < len(data):
            with self.path.open("r+b") as file:
                file.truncate(end)

    def record(self, node_id: str, seq: int, body: bytes) -> None:
        try:
            text: object = body.decode("utf-8")
            key = "data"
        except UnicodeDecodeError:
            text, key = base64.b64encode(body).decode("ascii"), "data_b64"
        line = json.dumps({"node": node_id, "seq": seq, key: text}, ensure_ascii=False)
        self._file.write(line.encode("utf-8") + b"\n")

    @property
    def closed(self) -> bool:
        return self._file.closed

    def flush(self) -> None:
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close the journal; safe to call again.

        The file is closed even when the last flush fails (a full disk, an fsync error):
        the error still reaches the caller, but a hub that goes on running, or opens the
        journal again, does not keep the old descriptor.
        """
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()

    def __enter__(self) -> JournalLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
