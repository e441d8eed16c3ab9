"""The spool: every batch of readings is stored here before any destination sees it.

SQLite in WAL mode, one row per poll (a batch of readings with consecutive per-device
sequence numbers, payload already encoded), committed in batches every
``commit_interval`` by one writer thread, so the event loop never waits for the disk.

Durability, stated: a batch is handed to destinations only after its transaction
committed. With ``synchronous = "normal"`` (the default) a committed batch survives the
gateway process being killed (SIGKILL, OOM, crash): it is in the WAL file, which the OS
writes even if the process dies; a power cut may lose the last commits (not yet
fsynced). ``synchronous = "full"`` fsyncs every commit, so a committed batch survives a
power cut too. Readings polled but not yet committed when the process dies were never
sent anywhere, and their sequence numbers are given again after the restart, so
subscribers see no gap.

Each destination has its own position (the last record it acknowledged, contiguously);
a record is deleted once every destination is past it. Positions and the next sequence
number of every device are written in the same transactions as the records. After a
restart each destination resumes after its stored position: what was in flight is sent
again, and the sequence numbers let receivers drop those duplicates.

When the spool holds ``max_readings``, the policy applies: ``drop_oldest`` deletes the
oldest records (even if not yet delivered), ``drop_newest`` refuses new ones. Either
way the dropped readings are counted per device with their sequence ranges and handed to
``on_drop`` so that the gateway publishes them: a drop is never silent.

A destination that gives up on readings it cannot ever deliver (the MCP uplink with a
reading over one frame) reports them through ``report_drop``: they are counted per
destination, device and kind next to the spool's own drops, kept across restarts, and
handed to the same ``on_drop``. So there is one ledger and one path for every drop.

Recent records also stay in memory (up to ``tail_bytes``), so destinations that keep up
never read back from the disk.
"""

from __future__ import annotations

import asyncio
import bisect
import sqlite3
import time
from array import array
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mcptool.errors import McptoolError

__all__ = ["SPOOL_FULL", "Dropped", "Record", "Spool", "SpoolError", "SpoolStats"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    seq_first INTEGER NOT NULL,
    count INTEGER NOT NULL,
    ts REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (sink TEXT PRIMARY KEY, acked INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (name TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dropped (device TEXT PRIMARY KEY, readings INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sink_dropped (
    sink TEXT NOT NULL,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    readings INTEGER NOT NULL,
    PRIMARY KEY (sink, device, kind)
);
"""


class SpoolError(McptoolError):
    """The spool file cannot be opened or written (path, permissions, disk full)."""


@dataclass(slots=True)
class Record:
    """One poll's readings of one device: sequence numbers seq_first .. seq_first+count-1."""

    id: int
    device: str
    seq_first: int
    count: int
    ts: float
    payload: bytes

    @property
    def seq_last(self) -> int:
        return self.seq_first + self.count - 1


SPOOL_FULL = "spool_full"


@dataclass(frozen=True, slots=True)
class Dropped:
    """Readings seq_first..seq_last of ``device`` that will not reach (some) destinations.

    ``reason`` is the line a person reads; ``where`` (``"spool"`` or the name of the
    destination that gave up) and ``kind`` (a short code) label the counts.
    """

    device: str
    seq_first: int
    seq_last: int
    reason: str
    where: str = "spool"
    kind: str = SPOOL_FULL

    @property
    def count(self) -> int:
        return self.seq_last - self.seq_first + 1

    def __str__(self) -> str:
        """The log line: ``<reason>: dropped <device> seq <first>-<last>``."""
        return f"{self.reason}: dropped {self.device} seq {self.seq_first}-{self.seq_last}"


@dataclass(frozen=True, slots=True)
class SpoolStats:
    depth: int  # readings stored and not yet acknowledged by every destination
    records: int
    oldest_age: float  # seconds since the oldest such reading was polled
    committed_id: int
    dropped: int
    lag: dict[str, int]  # per destination: records not yet acknowledged


class Spool:
    """``async with Spool(path, sinks=[...]) as spool:``; see the module doc for guarantees."""

    def __init__(
        self,
        path: str | Path,
        *,
        sinks: Iterable[str],
        synchronous: Literal["normal", "full"] = "normal",
        commit_interval: float = 0.02,
        max_readings: int = 5_000_000,
        policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest",
        tail_bytes: int = 16 * 1024 * 1024,
        on_drop: Callable[[Dropped], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.sinks = list(sinks)
        self.synchronous = synchronous
        self.commit_interval = commit_interval
        self.max_readings = max_readings
        self.policy = policy
        self.tail_bytes = tail_bytes
        self.on_drop = on_drop
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="spool")
        self._db: sqlite3.Connection | None = None
        self._pending: list[Record] = []
        self._pending_event = asyncio.Event()
        self._next_id = 1
        self._next_seq: dict[str, int] = {}
        self._dirty_seq: dict[str, int] = {}
        self._positions: dict[str, int] = {}
        self._stored_positions: dict[str, int] = {}
        self._committed_id = 0
        self._depth = 0  # readings in the database or pending, not yet deleted
        self._records = 0
        # every stored record's id, poll time and running reading count (no payload), for
        # exact lag and age; records with id > _tail_floor also keep their payload here
        self._ids = array("q")
        self._ts = array("d")
        self._cum = array("q")
        self._start = 0
        self._total = 0  # readings ever appended (the running count)
        self._cum_base = 0  # the running count before the first stored record
        self._tail: dict[int, Record] = {}
        self._tail_size = 0
        self._tail_floor = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._dropped_total = 0
        self._dropped_devices: dict[str, int] = {}
        self._dirty_dropped: set[str] = set()
        # (destination, device, kind) -> readings a destination gave up on
        self._sink_dropped: dict[tuple[str, str, str], int] = {}
        self._dirty_sink_dropped: set[tuple[str, str, str]] = set()
        self._closed = False
        self._commit_lock = asyncio.Lock()  # flush() and the writer must not interleave

    # -- life cycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Spool:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        try:
            await self._run(self._open_db)
        except BaseException:
            self._closed = True
            self._executor.shutdown(wait=False)
            raise
        self._writer = asyncio.create_task(self._write_loop(), name="spool writer")

    def _open_db(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise SpoolError(f"spool {self.path}: cannot open ({reason}); check the path") from None
        self._db = db
        max_id = 0
        for record_id, ts, count in db.execute("SELECT id, ts, count FROM records ORDER BY id"):
            self._index(record_id, ts, count)
            max_id = record_id
        self._depth, self._records = self._total, len(self._ids)
        self._next_id = max_id + 1
        self._committed_id = max_id
        self._tail_floor = max_id
        self._next_seq = dict(db.execute("SELECT name, next_seq FROM devices").fetchall())
        stored = dict(db.execute("SELECT sink, acked FROM positions").fetchall())
        oldest = db.execute("SELECT COALESCE(MIN(id), 1) - 1 FROM records").fetchone()[0]
        # a new destination starts at what is stored now: it gets every undelivered record
        self._positions = {sink: stored.get(sink, oldest) for sink in self.sinks}
        self._stored_positions = dict(stored)
        self._dropped_devices = dict(db.execute("SELECT device, readings FROM dropped"))
        self._dropped_total = sum(self._dropped_devices.values())
        self._sink_dropped = {
            (sink, device, kind): readings
            for sink, device, kind, readings in db.execute("SELECT * FROM sink_dropped")
        }

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._db is not None:
            await self._commit()  # what is pending, and the latest positions
            await self._run(self._db.close)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._executor.shutdown(wait=True)

    # -- producing ----------------------------------------------------------------------

    def reserve(self, device: str, count: int) -> int:
        """The first of ``count`` new sequence numbers of ``device`` (from 1, persistent)."""
        first = self._next_seq.get(device, 1)
        self._next_seq[device] = first + count
        self._dirty_seq[device] = first + count
        return first

    def last_seq(self, device: str) -> int:
        """The last sequence number given to ``device`` (0 if none)."""
        return self._next_seq.get(device, 1) - 1

    def append(self, device: str, seq_first: int, count: int, ts: float, payload: bytes) -> None:
        """Queue a batch; it is committed within ``commit_interval``, then sent."""
        if self._closed:
            raise SpoolError("spool is closed")
        if self.policy == "drop_newest" and self._depth + count > self.max_readings:
            self._drop(Dropped(device, seq_first, seq_first + count - 1, "spool full"))
            return
        record = Record(self._next_id, device, seq_first, count, ts, payload)
        self._next_id += 1
        self._index(record.id, ts, count)
        self._pending.append(record)
        self._depth += count
        self._records += 1
        self._pending_event.set()

    def _index(self, record_id: int, ts: float, count: int) -> None:
        self._total += count
        self._ids.append(record_id)
        self._ts.append(ts)
        self._cum.append(self._total)

    def _drop(self, dropped: Dropped) -> None:
        count = dropped.count
        self._dropped_total += count
        self._dropped_devices[dropped.device] = self._dropped_devices.get(dropped.device, 0) + count
        self._dirty_dropped.add(dropped.device)
        if self.on_drop is not None:
            self.on_drop(dropped)

    def report_drop(self, dropped: Dropped) -> None:
        """A destination (``dropped.where``) gave up on these readings for good: count them
        (stored with the next commit) and hand them to ``on_drop`` like the spool's own.

        Counted at least once: if the process dies after the count is stored and before
        the destination's position is, the record is sent, and dropped, once more.
        """
        if dropped.where == "spool":
            raise ValueError("report_drop is for a destination's drops, not the spool's")
        key = (dropped.where, dropped.device, dropped.kind)
        self._sink_dropped[key] = self._sink_dropped.get(key, 0) + dropped.count
        self._dirty_sink_dropped.add(key)
        self._pending_event.set()
        if self.on_drop is not None:
            self.on_drop(dropped)

    # -- consuming ----------------------------------------------------------------------

    def position(self, sink: str) -> int:
        return self._positions[sink]

    def ack(self, sink: str, upto: int) -> None:
        """``sink`` has every record up to id ``upto`` (persisted with the next commit)."""
        if upto > self._positions[sink]:
            self._positions[sink] = upto
            self._pending_event.set()

    async def fetch(self, after: int, limit: int) -> list[Record]:
        """Committed records with id > ``after``, oldest first (at most ``limit``)."""
        if after >= self._tail_floor:
            ids = self._ids
            i = bisect.bisect_right(ids, after, lo=self._start)
            out: list[Record] = []
            while i < len(ids) and len(out) < limit and ids[i] <= self._committed_id:
                record = self._tail.get(ids[i])
                if record is not None:
                    out.append(record)
                i += 1
            return out
        return await self._run(self._select, after, limit)

    def _select(self, after: int, limit: int) -> list[Record]:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT id, device, seq_first, count, ts, payload FROM records"
            " WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (after, self._committed_id, limit),
        ).fetchall()
        return [Record(*row) for row in rows]

    async def wait_beyond(self, after: int) -> None:
        """Return once a record with id > ``after`` is committed."""
        while self._committed_id <= after:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    @property
    def committed_id(self) -> int:
        return self._committed_id

    def stats(self) -> SpoolStats:
        low = min(self._positions.values(), default=self._committed_id)
        return SpoolStats(
            depth=self._depth,
            records=self._records,
            oldest_age=self._age(low),
            committed_id=self._committed_id,
            dropped=self._dropped_total,
            lag={sink: self.lag(sink) for sink in self._positions},
        )

    def lag(self, sink: str) -> int:
        """Readings committed and not yet acknowledged by ``sink``."""
        i = bisect.bisect_right(self._ids, self._positions[sink], lo=self._start)
        j = bisect.bisect_right(self._ids, self._committed_id, lo=self._start)
        if j <= i:
            return 0
        return self._cum[j - 1] - (self._cum[i - 1] if i > self._start else self._cum_base)

    def lag_seconds(self, sink: str) -> float:
        """Age of the oldest reading ``sink`` has not yet acknowledged."""
        return self._age(self._positions[sink])

    def _age(self, after: int) -> float:
        i = bisect.bisect_right(self._ids, after, lo=self._start)
        if i >= len(self._ids) or self._ids[i] > self._committed_id:
            return 0.0
        return max(0.0, time.time() - self._ts[i])

    @property
    def dropped(self) -> dict[str, int]:
        """Readings dropped by the limit policy, per device (kept across restarts)."""
        return dict(self._dropped_devices)

    def sink_dropped(self, sink: str) -> dict[str, int]:
        """Readings ``sink`` gave up on, per device (kept across restarts)."""
        counts: dict[str, int] = {}
        for (where, device, _kind), readings in list(self._sink_dropped.items()):
            if where == sink:
                counts[device] = counts.get(device, 0) + readings
        return counts

    def drops(self) -> dict[tuple[str, str, str], int]:
        """Every drop counted, the spool's and the destinations', by (where, device, kind)."""
        counts = {
            ("spool", device, SPOOL_FULL): readings
            for device, readings in list(self._dropped_devices.items())
        }
        counts.update(self._sink_dropped)
        return counts

    # -- writing ------------------------------------------------------------------------

    async def flush(self) -> None:
        """Commit what is pending now (the writer would within ``commit_interval``)."""
        await self._commit()

    async def _write_loop(self) -> None:
        while True:
            await self._pending_event.wait()
            await asyncio.sleep(self.commit_interval)  # gather a batch: one commit for many
            await self._commit()

    async def _commit(self) -> None:
        async with self._commit_lock:
            await self._commit_locked()

    async def _commit_locked(self) -> None:
        self._pending_event.clear()
        batch, self._pending = self._pending, []
        seqs, self._dirty_seq = self._dirty_seq, {}
        positions = {s: p for s, p in self._positions.items() if self._stored_positions.get(s) != p}
        dropped = {d: self._dropped_devices[d] for d in self._dirty_dropped}
        self._dirty_dropped.clear()
        sink_dropped = {k: self._sink_dropped[k] for k in self._dirty_sink_dropped}
        self._dirty_sink_dropped.clear()
        low = min(self._positions.values(), default=0)
        excess = self._depth - self.max_readings if self.policy == "drop_oldest" else 0
        if not (batch or seqs or positions or dropped or sink_dropped or excess > 0):
            return
        evicted = await self._run(
            self._write, batch, seqs, positions, dropped, sink_dropped, low, max(0, excess)
        )
        self._stored_positions.update(positions)
        for record in evicted:
            self._drop(Dropped(record.device, record.seq_first, record.seq_last, "spool full"))
        cut = max([low, *(r.id for r in evicted)])
        self._cut(cut)
        self._extend_tail([r for r in batch if r.id > cut])
        if batch:
            self._committed_id = batch[-1].id
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _write(
        self,
        batch: list[Record],
        seqs: dict[str, int],
        positions: dict[str, int],
        dropped: dict[str, int],
        sink_dropped: dict[tuple[str, str, str], int],
        low: int,
        excess: int,
    ) -> list[Record]:
        """One transaction: records, sequence numbers, positions, deletions."""
        db = self._db
        assert db is not None
        try:
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)",
                [(r.id, r.device, r.seq_first, r.count, r.ts, r.payload) for r in batch],
            )
            db.executemany(
                "INSERT INTO devices VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET next_seq = excluded.next_seq",
                seqs.items(),
            )
            db.executemany(
                "INSERT INTO positions VALUES (?, ?)"
                " ON CONFLICT(sink) DO UPDATE SET acked = excluded.acked",
                positions.items(),
            )
            db.executemany(
                "INSERT INTO dropped VALUES (?, ?)"
                " ON CONFLICT(device) DO UPDATE SET readings = excluded.readings",
                dropped.items(),
            )
            db.executemany(
                "INSERT INTO sink_dropped VALUES (?, ?, ?, ?) ON CONFLICT(sink, device, kind)"
                " DO UPDATE SET readings = excluded.readings",
                [(*key, readings) for key, readings in sink_dropped.items()],
            )
            db.execute("DELETE FROM records WHERE id <= ?", (low,))
            evicted: list[Record] = []
            if excess > 0:
                freed = 0
                for i, d, s, c in db.execute(
                    "SELECT id, device, seq_first, count FROM records ORDER BY id"
                ):
                    evicted.append(Record(i, d, s, c, 0.0, b""))
                    freed += c
                    if freed >= excess:
                        break
                if evicted:
                    db.execute("DELETE FROM records WHERE id <= ?", (evicted[-1].id,))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise SpoolError(f"spool {self.path}: write failed ({exc})") from None
        return evicted

    def _cut(self, cut: int) -> None:
        """Forget records with id <= ``cut`` (deleted: delivered everywhere, or dropped)."""
        end = bisect.bisect_right(self._ids, cut, lo=self._start)
        if end == self._start:
            return
        self._depth -= self._cum[end - 1] - self._cum_base
        self._cum_base = self._cum[end - 1]
        self._records -= end - self._start
        for record_id in self._ids[self._start : end]:
            record = self._tail.pop(record_id, None)
            if record is not None:
                self._tail_size -= len(record.payload)
        self._start = end
        self._tail_floor = max(self._tail_floor, cut)
        if self._start > 4096 and self._start * 2 > len(self._ids):
            del self._ids[: self._start], self._ts[: self._start], self._cum[: self._start]
            self._start = 0

    def _extend_tail(self, batch: list[Record]) -> None:
        for record in batch:
            self._tail[record.id] = record
            self._tail_size += len(record.payload)
        while self._tail_size > self.tail_bytes and self._tail:
            oldest = next(iter(self._tail))  # dicts keep insertion (= id) order
            self._tail_size -= len(self._tail.pop(oldest).payload)
            self._tail_floor = max(self._tail_floor, oldest)

    def _run(self, fn: Callable[..., object], *args: object) -> asyncio.Future:  # type: ignore[type-arg]
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
