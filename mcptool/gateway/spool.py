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

Record ids never go backwards: the highest id ever given is stored with every commit
(table ``meta``), and on open the next id is above it, above every stored record and above
every stored destination position. So no restart (a clean stop leaves the records table
empty), crash, or added or removed destination can make a new record look delivered.

A spool that cannot write (disk full, I/O error) is an outage, not a loss: the writer
keeps the batch, retries with backoff and reports the outage through ``on_health`` at
once (and its end); ``healthy``, ``write_errors`` and ``last_error`` say so to metrics and
statuses. Up to ``max_pending`` readings wait in memory; past that the policy applies to
them (``drop_oldest`` drops the oldest waiting, ``drop_newest`` refuses new ones), every
reading counted as a drop. While the outage lasts, waiting records are handed to the
destinations from memory (at least once), after their sequence numbers and ids were
written to a small side file (``<spool>.seq``, preallocated at open, overwritten in place
so that it needs no new disk blocks): a crash during the outage can then never give those
numbers again to other readings (a subscriber would drop those as duplicates). If that
file cannot be written either, the waiting records are held back until the disk has room.
On open, numbers the side file covers beyond the last commit are reported as dropped: the
readings were lost in the crash, and perhaps delivered somewhere before it.

Recent records also stay in memory (up to ``tail_bytes``), so destinations that keep up
never read back from the disk.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import os
import sqlite3
import time
from array import array
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from mcptool.backoff import Backoff
from mcptool.errors import McptoolError

__all__ = [
    "SPOOL_FULL",
    "Dropped",
    "Kind",
    "Record",
    "Spool",
    "SpoolError",
    "SpoolStats",
    "stream",
]

log = logging.getLogger(__name__)

# The side file's size: enough for the sequence numbers of about 2,000 devices.
_SEQ_FILE_SIZE = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    seq_first INTEGER NOT NULL,
    count INTEGER NOT NULL,
    ts REAL NOT NULL,
    payload BLOB NOT NULL,
    kind TEXT NOT NULL DEFAULT 'telemetry'
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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


# Spools written before records had a kind: a finding was stored under the pseudo-device
# "<device>/analysis". Opening one adds the column and moves those rows to their kind.
_MIGRATE_KIND = """
ALTER TABLE records ADD COLUMN kind TEXT NOT NULL DEFAULT 'telemetry';
UPDATE records SET kind = 'finding', device = substr(device, 1, length(device) - 9)
    WHERE device LIKE '%_/analysis';
"""


class SpoolError(McptoolError):
    """The spool file cannot be opened or written (path, permissions, disk full)."""


class Kind(StrEnum):
    """What a record is; stored with it, so that no reader guesses from its content."""

    TELEMETRY = "telemetry"  # one poll of one device: readings with sequence numbers
    FINDING = "finding"  # an analysis record (trigger, finding, analysis error) on a device
    STATUS = "status"  # a device's or the gateway's status


_STREAM_SUFFIX = {Kind.TELEMETRY: "", Kind.FINDING: "/analysis", Kind.STATUS: "/status"}


def stream(device: str, kind: Kind = Kind.TELEMETRY) -> str:
    """The name of the sequence numbers (and drop counts) of ``device``'s records of
    ``kind``: each kind counts from 1 without holes, so telemetry has none where a finding
    was stored. A finding's is ``<device>/analysis``, the name spools before kinds used."""
    return device + _STREAM_SUFFIX[kind]


@dataclass(slots=True)
class Record:
    """A batch of ``count`` items of ``device`` (readings for telemetry, one for a finding
    or a status), with sequence numbers seq_first .. seq_first+count-1 in its stream."""

    id: int
    device: str
    seq_first: int
    count: int
    ts: float
    payload: bytes
    kind: Kind = Kind.TELEMETRY

    @property
    def seq_last(self) -> int:
        return self.seq_first + self.count - 1

    @property
    def stream(self) -> str:
        return stream(self.device, self.kind)


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
        max_pending: int = 1_000_000,
        keep: float = 0.0,
        on_drop: Callable[[Dropped], None] | None = None,
        on_health: Callable[[bool, str], None] | None = None,
        on_commit: Callable[[list[Record]], None] | None = None,
        retry: Backoff | None = None,
    ) -> None:
        self.path = Path(path)
        self.sinks = list(sinks)
        self.synchronous = synchronous
        self.commit_interval = commit_interval
        self.max_readings = max_readings
        self.policy = policy
        self.tail_bytes = tail_bytes
        self.max_pending = max_pending
        # seconds a record stays in the file after every destination has it: history for
        # readers of the file (the context server); 0 deletes it at once
        self.keep = keep
        self.on_drop = on_drop
        self.on_health = on_health
        self.on_commit = on_commit  # each batch of records, once its transaction committed
        self._retry = retry or Backoff(initial=0.25, multiplier=2.0, maximum=5.0)
        self.healthy = True  # the last write succeeded
        self.write_errors = 0  # failed commits, ever (this process)
        self.last_error = ""
        self.unhealthy_since = 0.0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="spool")
        self._db: sqlite3.Connection | None = None
        self._seq_file: int | None = None  # the side file's descriptor (module doc)
        # records appended and not yet committed, by id (ascending)
        self._pending: dict[int, Record] = {}
        self._pending_readings = 0
        self._visible_id = 0  # fetch hands out records up to here: committed, or covered
        # by the side file while the disk is full
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
        # numbers the side file covers beyond the last commit: readings given them were
        # lost in a stop during an outage (perhaps delivered somewhere from memory first)
        lost, self._lost_in_outage = self._lost_in_outage, {}
        for device, (first, next_seq) in sorted(lost.items()):
            why = "not stored before the gateway stopped during a spool outage"
            self._drop(Dropped(device, first, next_seq - 1, why))
        self._writer = asyncio.create_task(self._write_loop(), name="spool writer")

    def _open_db(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(records)")}
            if "kind" not in columns:
                db.executescript(f"BEGIN; {_MIGRATE_KIND} COMMIT;")
        except (sqlite3.Error, OSError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise SpoolError(f"spool {self.path}: cannot open ({reason}); check the path") from None
        self._db = db
        max_id = 0
        for record_id, ts, count in db.execute("SELECT id, ts, count FROM records ORDER BY id"):
            self._index(record_id, ts, count)
            max_id = record_id
        self._depth, self._records = self._total, len(self._ids)
        stored = dict(db.execute("SELECT sink, acked FROM positions").fetchall())
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        self._next_seq = dict(db.execute("SELECT name, next_seq FROM devices").fetchall())
        side = self._read_seq_file()
        # ids only grow: above every record, every position and every id ever given (a
        # clean stop leaves no records; positions alone would not cover dropped records)
        last_id = max(max_id, meta.get("last_id", 0), side.get("last_id", 0), *stored.values())
        self._next_id = last_id + 1
        self._committed_id = self._visible_id = self._tail_floor = last_id
        self._lost_in_outage = {
            device: (self._next_seq.get(device, 1), next_seq)
            for device, next_seq in side.get("next_seq", {}).items()
            if next_seq > self._next_seq.get(device, 1)
        }
        for device, (_first, next_seq) in self._lost_in_outage.items():
            self._next_seq[device] = next_seq
            self._dirty_seq[device] = next_seq
        # a new destination starts at what is stored now: it gets every undelivered record
        # (not the delivered ones ``keep`` holds as history: after the lowest position)
        oldest = self._ids[0] - 1 if self._ids else last_id
        known = [stored[sink] for sink in self.sinks if sink in stored]
        if known:
            oldest = max(oldest, min(known))
        self._positions = {sink: stored.get(sink, oldest) for sink in self.sinks}
        self._stored_positions = dict(stored)
        if self._positions:
            # records kept after delivery are history, not depth: only what some
            # destination still lacks is indexed as waiting (without ``keep`` there are none)
            self._cut(min(self._positions.values()))
        self._open_seq_file()
        self._dropped_devices = dict(db.execute("SELECT device, readings FROM dropped"))
        self._dropped_total = sum(self._dropped_devices.values())
        self._sink_dropped = {
            (sink, device, kind): readings
            for sink, device, kind, readings in db.execute("SELECT * FROM sink_dropped")
        }

    @property
    def _seq_path(self) -> Path:
        return self.path.with_name(self.path.name + ".seq")

    def _read_seq_file(self) -> dict[str, object]:
        """What the side file says, or nothing if it is absent or torn."""
        try:
            raw = self._seq_path.read_bytes()
            data = json.loads(raw.split(b"\n", 1)[0])
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _open_seq_file(self) -> None:
        """Allocate the side file now, while the disk has room (module doc); without it the
        spool still works, only an outage delivers nothing until the disk has room."""
        try:
            fd = os.open(self._seq_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            log.warning("spool %s: no side file (%s)", self.path, exc.strerror)
            return
        try:
            if os.fstat(fd).st_size < _SEQ_FILE_SIZE:
                os.pwrite(fd, b"{}\n".ljust(_SEQ_FILE_SIZE), 0)
        except OSError as exc:
            os.close(fd)
            log.warning("spool %s: no side file (%s)", self.path, exc.strerror)
            return
        self._seq_file = fd

    def _write_seq_file(self, last_id: int, next_seq: dict[str, int]) -> bool:
        """Overwrite the side file in place (no new blocks needed); False if it failed."""
        if self._seq_file is None:
            return False
        body = json.dumps({"last_id": last_id, "next_seq": next_seq}).encode() + b"\n"
        if len(body) > _SEQ_FILE_SIZE:
            return False
        try:
            os.pwrite(self._seq_file, body.ljust(_SEQ_FILE_SIZE), 0)
        except OSError:
            return False
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        try:
            if self._db is not None:
                await self._commit()  # what is pending, and the latest positions
        except SpoolError as exc:
            await self._run(self._write_seq_file, self._next_id - 1, dict(self._next_seq))
            lost = ", ".join(
                f"{r.device} seq {r.seq_first}-{r.seq_last}" for r in self._pending.values()
            )
            log.error(
                "%s at stop: %d readings held in memory are lost (%s); free disk space"
                " before the next start",
                exc,
                self._pending_readings,
                lost or "none",
            )
            raise
        finally:
            if self._db is not None:
                await self._run(self._db.close)
            if self._seq_file is not None:
                os.close(self._seq_file)
                self._seq_file = None
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.cancel()
            self._executor.shutdown(wait=True)

    # -- producing ----------------------------------------------------------------------

    def reserve(self, device: str, count: int, kind: Kind = Kind.TELEMETRY) -> int:
        """The first of ``count`` new sequence numbers of ``device``'s records of ``kind``
        (from 1, persistent)."""
        key = stream(device, kind)
        first = self._next_seq.get(key, 1)
        self._next_seq[key] = first + count
        self._dirty_seq[key] = first + count
        return first

    def last_seq(self, device: str, kind: Kind = Kind.TELEMETRY) -> int:
        """The last sequence number given to ``device``'s records of ``kind`` (0 if none)."""
        return self._next_seq.get(stream(device, kind), 1) - 1

    def append(
        self,
        device: str,
        seq_first: int,
        count: int,
        ts: float,
        payload: bytes,
        kind: Kind = Kind.TELEMETRY,
    ) -> None:
        """Queue a batch; it is committed within ``commit_interval``, then sent."""
        if self._closed:
            raise SpoolError("spool is closed")
        if self.policy == "drop_newest" and self._depth + count > self.max_readings:
            last = seq_first + count - 1
            self._drop(Dropped(stream(device, kind), seq_first, last, "spool full"))
            return
        record = Record(self._next_id, device, seq_first, count, ts, payload, kind)
        self._next_id += 1
        self._index(record.id, ts, count)
        self._pending[record.id] = record
        self._pending_readings += count
        self._depth += count
        self._records += 1
        self._pending_event.set()
        if self._pending_readings > self.max_pending:
            self._overflow()

    def _overflow(self) -> None:
        """The disk takes nothing and memory holds ``max_pending``: apply the policy to the
        records waiting in memory (the newest just appended, or the oldest waiting)."""
        why = f"spool cannot write ({self.last_error or 'disk'}), {self.max_pending} held"
        while self._pending_readings > self.max_pending and len(self._pending) > 1:
            if self.policy == "drop_newest":
                record = self._pending.pop(next(reversed(self._pending)))
            else:
                record = self._pending.pop(next(iter(self._pending)))
            self._unindex(record)
            self._drop(Dropped(record.stream, record.seq_first, record.seq_last, why))

    def _unindex(self, record: Record) -> None:
        """Forget a record that waited in memory (always among the newest indexed)."""
        i = bisect.bisect_left(self._ids, record.id, lo=self._start)
        del self._ids[i], self._ts[i], self._cum[i]
        for j in range(i, len(self._cum)):
            self._cum[j] -= record.count
        self._total -= record.count
        self._pending_readings -= record.count
        self._depth -= record.count
        self._records -= 1

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
            while i < len(ids) and len(out) < limit and ids[i] <= self._visible_id:
                record = self._tail.get(ids[i]) or self._pending.get(ids[i])
                if record is not None:
                    out.append(record)
                i += 1
            return out
        return await self._run(self._select, after, limit)

    def _select(self, after: int, limit: int) -> list[Record]:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT id, device, seq_first, count, ts, payload, kind FROM records"
            " WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (after, self._committed_id, limit),
        ).fetchall()
        return [Record(*row[:6], Kind(row[6])) for row in rows]

    async def wait_beyond(self, after: int) -> None:
        """Return once a record with id > ``after`` can be fetched."""
        while self._visible_id <= after:
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
        j = bisect.bisect_right(self._ids, self._visible_id, lo=self._start)
        if j <= i:
            return 0
        return self._cum[j - 1] - (self._cum[i - 1] if i > self._start else self._cum_base)

    def lag_seconds(self, sink: str) -> float:
        """Age of the oldest reading ``sink`` has not yet acknowledged."""
        return self._age(self._positions[sink])

    def _age(self, after: int) -> float:
        i = bisect.bisect_right(self._ids, after, lo=self._start)
        if i >= len(self._ids) or self._ids[i] > self._visible_id:
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
        """Commit what is pending now (the writer would within ``commit_interval``);
        raises ``SpoolError`` if the disk does not take it (the spool keeps it, retrying)."""
        if not await self._attempt():
            raise SpoolError(self.last_error)

    async def _write_loop(self) -> None:
        while True:
            if self.healthy:
                await self._pending_event.wait()
                await asyncio.sleep(self.commit_interval)  # gather a batch: one commit for many
            else:
                await asyncio.sleep(self._retry.next_delay())
            # shielded: a stop must not cut the bookkeeping of a write the disk has done
            await asyncio.shield(self._attempt())

    async def _attempt(self) -> bool:
        """Commit; on failure enter (or stay in) the outage state. True if it committed."""
        try:
            await self._commit()
        except SpoolError as exc:
            await self._failed(str(exc))
            return False
        if not self.healthy:
            self._recovered()
        return True

    async def _failed(self, error: str) -> None:
        self.write_errors += 1
        self.last_error = error
        if self.healthy:
            self.healthy = False
            self.unhealthy_since = time.monotonic()
            self._retry.reset()
            if self.on_health is not None:
                self.on_health(False, error)
        # hand what waits to the destinations from memory, once its numbers are safe
        last = next(reversed(self._pending), 0)
        if last > self._visible_id and await self._run(
            self._write_seq_file, self._next_id - 1, dict(self._next_seq)
        ):
            self._visible_id = last
            self._wake()

    def _recovered(self) -> None:
        self.healthy = True
        self.last_error = ""
        if self.on_health is not None:
            self.on_health(True, f"after {time.monotonic() - self.unhealthy_since:.1f} s")

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _commit(self) -> None:
        async with self._commit_lock:
            await self._commit_locked()

    async def _commit_locked(self) -> None:
        self._pending_event.clear()
        batch = list(self._pending.values())
        seqs = dict(self._dirty_seq)
        positions = {s: p for s, p in self._positions.items() if self._stored_positions.get(s) != p}
        dropped = {d: self._dropped_devices[d] for d in self._dirty_dropped}
        sink_dropped = {k: self._sink_dropped[k] for k in self._dirty_sink_dropped}
        low = min(self._positions.values(), default=0)
        excess = self._depth - self.max_readings if self.policy == "drop_oldest" else 0
        if not (batch or seqs or positions or dropped or sink_dropped or excess > 0):
            return
        last_id = self._next_id - 1
        # what the write takes stays in place until it succeeded: a failed write (disk
        # full) loses nothing, the next attempt takes it again with whatever came since
        evicted = await self._run(
            self._write,
            batch,
            seqs,
            positions,
            dropped,
            sink_dropped,
            low,
            max(0, excess),
            last_id,
            time.time() - self.keep if self.keep else None,
        )
        for record in batch:
            if self._pending.pop(record.id, None) is not None:  # else dropped meanwhile
                self._pending_readings -= record.count
        for device, next_seq in seqs.items():
            if self._dirty_seq.get(device) == next_seq:
                del self._dirty_seq[device]
        for device, readings in dropped.items():
            if self._dropped_devices[device] == readings:
                self._dirty_dropped.discard(device)
        for key, readings in sink_dropped.items():
            if self._sink_dropped[key] == readings:
                self._dirty_sink_dropped.discard(key)
        self._stored_positions.update(positions)
        for record in evicted:
            self._drop(Dropped(record.stream, record.seq_first, record.seq_last, "spool full"))
        cut = max([low, *(r.id for r in evicted)])
        self._cut(cut)
        self._extend_tail([r for r in batch if r.id > cut])
        if batch:
            self._committed_id = batch[-1].id
            self._visible_id = max(self._visible_id, self._committed_id)
            if self.on_commit is not None:
                self.on_commit(batch)
        self._wake()

    def _write(
        self,
        batch: list[Record],
        seqs: dict[str, int],
        positions: dict[str, int],
        dropped: dict[str, int],
        sink_dropped: dict[tuple[str, str, str], int],
        low: int,
        excess: int,
        last_id: int,
        kept_after: float | None = None,
    ) -> list[Record]:
        """One transaction: records, sequence numbers, positions, deletions, the last id.
        With ``kept_after``, delivered records polled after it stay (``keep``)."""
        db = self._db
        assert db is not None
        try:
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO records (id, device, seq_first, count, ts, payload, kind)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(r.id, r.device, r.seq_first, r.count, r.ts, r.payload, r.kind) for r in batch],
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
            db.execute(
                "INSERT INTO meta VALUES ('last_id', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
                (last_id,),
            )
            if kept_after is None:
                db.execute("DELETE FROM records WHERE id <= ?", (low,))
            else:
                db.execute("DELETE FROM records WHERE id <= ? AND ts < ?", (low, kept_after))
            evicted: list[Record] = []
            if excess > 0:
                freed = 0
                # only records some destination still lacks: the kept ones were delivered
                for i, d, s, c, k in db.execute(
                    "SELECT id, device, seq_first, count, kind FROM records WHERE id > ?"
                    " ORDER BY id",
                    (low,),
                ):
                    evicted.append(Record(i, d, s, c, 0.0, b"", Kind(k)))
                    freed += c
                    if freed >= excess:
                        break
                if evicted:
                    db.execute("DELETE FROM records WHERE id <= ?", (evicted[-1].id,))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
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
