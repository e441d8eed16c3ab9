"""The spool against a plain model, over every order of operations hypothesis finds:
appends, commits, fetches and acks per destination, clean stops, crashes (the process
gone without a word, also in the middle of a commit's statements), restarts, destinations
added and removed, a full spool under each policy, and a disk that refuses to write
(SQLite's ``max_page_count``) and takes writes again.

After every step: record ids and sequence numbers only grow (a number once committed or
handed to a destination is never given again), each destination sees records in id order
within a run. At the end: every reading the spool accepted (committed, or handed to a
destination) reached every destination that existed from its append to the end, at least
once, or was reported as dropped.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mcptool.gateway.spool import Dropped, Spool, SpoolError
from mcptool.link.backoff import Backoff

DEVICES = ("boiler", "meter")
DESTINATIONS = ("mqtt", "jsonl", "uplink")


@dataclass
class Model:
    """What the spool promised, in the plainest terms: sets of (device, seq)."""

    accepted: set[tuple[str, int]] = field(default_factory=set)
    unconfirmed: set[tuple[str, int]] = field(default_factory=set)
    dropped: set[tuple[str, int]] = field(default_factory=set)
    received: dict[str, set[tuple[str, int]]] = field(default_factory=dict)
    # per destination: readings it must get (accepted while it existed)
    owed: dict[str, set[tuple[str, int]]] = field(default_factory=dict)
    durable_seq: dict[str, int] = field(default_factory=dict)  # highest committed/delivered
    last_seq: dict[str, int] = field(default_factory=dict)  # highest handed out this run
    max_id: int = 0  # highest id committed or delivered


def readings(device: str, first: int, count: int) -> set[tuple[str, int]]:
    return {(device, seq) for seq in range(first, first + count)}


class SpoolMachine(RuleBasedStateMachine):
    pending_records = Bundle("pending_records")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.path = Path(self.tmp.name) / "spool.db"
        self.model = Model()
        self.spool: Spool | None = None
        self.sinks: list[str] = []
        self.policy = "drop_oldest"
        self.max_readings = 40
        self.keep = 0.0
        self.disk_full = False
        self.last_seen: dict[str, int] = {}  # per destination: last id fetched this run

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    # -- life cycle ---------------------------------------------------------------------

    @initialize(
        policy=st.sampled_from(["drop_oldest", "drop_newest"]),
        sinks=st.lists(st.sampled_from(DESTINATIONS), min_size=1, max_size=3, unique=True),
        max_pending=st.sampled_from([8, 1000]),
        keep=st.sampled_from([0.0, 3600.0]),
    )
    def start(self, policy: str, sinks: list[str], max_pending: int, keep: float = 0.0) -> None:
        self.policy = policy
        self.max_pending = max_pending
        # with keep, delivered records stay in the file (polled now: within the hour)
        self.keep = keep
        self.open(sinks)

    def on_drop(self, dropped: Dropped) -> None:
        self.model.dropped |= readings(dropped.device, dropped.seq_first, dropped.count)

    def open(self, sinks: list[str]) -> None:
        for sink in sinks:  # an added destination is owed what is accepted from now on
            self.model.owed.setdefault(sink, set())
            self.model.received.setdefault(sink, set())
        for sink in list(self.model.owed):
            if sink not in sinks:  # removed: nothing is owed to it any more
                del self.model.owed[sink]
                del self.model.received[sink]
        self.sinks = list(sinks)
        self.spool = Spool(
            self.path,
            sinks=sinks,
            commit_interval=3600,  # only the rules commit: the test decides when
            max_readings=self.max_readings,
            policy=self.policy,  # type: ignore[arg-type]
            max_pending=self.max_pending,
            keep=self.keep,
            on_drop=self.on_drop,
            retry=Backoff(initial=3600, maximum=3600),
        )
        self.run(self.spool.open())
        self.disk_full = False
        self.model.last_seq = {}
        self.last_seen = {}
        # a position restored from disk may be behind what a destination received (the
        # ack was not committed): it gets those again, which is allowed
        for sink in sinks:
            self.last_seen[sink] = self.spool.position(sink)

    def close_cleanly(self) -> None:
        assert self.spool is not None
        try:
            self.run(self.spool.close())
        except SpoolError:
            pass  # the disk was full at the stop: said loudly, what was pending is lost
        else:
            self.confirm()
        self.model.unconfirmed.clear()
        self.spool = None

    def crash(self) -> None:
        """The process is gone: no last commit, no close; the file stays as it is."""
        spool = self.spool
        assert spool is not None
        assert spool._writer is not None
        spool._writer.cancel()
        self.run(asyncio.gather(spool._writer, return_exceptions=True))
        spool._executor.shutdown(wait=True)
        assert spool._db is not None
        spool._db.close()  # an open transaction is rolled back, as after a kill
        if spool._seq_file is not None:
            os.close(spool._seq_file)
        spool._closed = True
        self.model.unconfirmed.clear()
        self.spool = None

    def confirm(self) -> None:
        """A commit succeeded: whatever was appended before it is accepted."""
        model = self.model
        for reading in model.unconfirmed:
            model.accepted.add(reading)
            model.durable_seq[reading[0]] = max(model.durable_seq.get(reading[0], 0), reading[1])
        model.unconfirmed.clear()

    # -- rules --------------------------------------------------------------------------

    @precondition(lambda self: self.spool is not None)
    @rule(device=st.sampled_from(DEVICES), count=st.integers(1, 12))
    def append(self, device: str, count: int) -> None:
        spool, model = self.spool, self.model
        assert spool is not None
        first = spool.reserve(device, count)
        assert first > model.durable_seq.get(device, 0), "a committed number given again"
        assert first > model.last_seq.get(device, 0), "a number given twice in one run"
        model.last_seq[device] = first + count - 1
        # over a page each, so that a full disk refuses every record (not only some)
        payload = f"{device}:{first}:{count}:".encode().ljust(5000, b"x")
        spool.append(device, first, count, time.time() if self.keep else 1.0, payload)
        new = readings(device, first, count)
        model.unconfirmed |= new
        for sink in self.sinks:
            model.owed[sink] |= new

    @precondition(lambda self: self.spool is not None)
    @rule()
    def flush(self) -> None:
        assert self.spool is not None
        try:
            self.run(self.spool.flush())
        except SpoolError:
            assert self.disk_full, "a write failed on a healthy disk"
            assert not self.spool.healthy and self.spool.write_errors > 0
            return
        assert self.spool.healthy
        self.confirm()

    @precondition(lambda self: self.spool is not None)
    @rule(sink=st.sampled_from(DESTINATIONS), limit=st.integers(1, 8), ack=st.booleans())
    def deliver(self, sink: str, limit: int, ack: bool) -> None:
        spool, model = self.spool, self.model
        assert spool is not None
        if sink not in self.sinks:
            return
        # a destination keeps its own place while connected, as the forwarder does
        records = self.run(spool.fetch(self.last_seen[sink], limit))
        for record in records:
            assert record.id > self.last_seen[sink], "records out of order within a run"
            self.last_seen[sink] = record.id
            device, first, count, _ = record.payload.decode().split(":")
            assert (device, int(first), int(count)) == (
                record.device,
                record.seq_first,
                record.count,
            )
            got = readings(record.device, record.seq_first, record.count)
            model.received[sink] |= got
            # handed out: from now on its numbers must never be given again
            model.accepted |= got & model.unconfirmed
            last = record.seq_last
            model.durable_seq[record.device] = max(model.durable_seq.get(record.device, 0), last)
            model.max_id = max(model.max_id, record.id)
        if records and ack:
            spool.ack(sink, records[-1].id)

    @precondition(lambda self: self.spool is not None)
    @rule()
    def stop_and_start(self) -> None:
        sinks = self.sinks
        self.close_cleanly()
        self.open(sinks)

    @precondition(lambda self: self.spool is not None)
    @rule()
    def crash_and_start(self) -> None:
        sinks = self.sinks
        self.crash()
        self.open(sinks)

    @precondition(lambda self: self.spool is not None)
    @rule(steps=st.integers(1, 400))
    def crash_inside_a_commit(self, steps: int) -> None:
        """SQLite stops the commit after ``steps`` VM steps, then the process dies."""
        spool = self.spool
        assert spool is not None and spool._db is not None
        spool._db.set_progress_handler(lambda: 1, steps)
        try:
            self.run(spool.flush())
        except SpoolError:
            pass
        else:
            self.confirm()
        spool._db.set_progress_handler(None, 0)
        self.crash_and_start()

    @precondition(lambda self: self.spool is not None)
    @rule(sinks=st.lists(st.sampled_from(DESTINATIONS), min_size=1, max_size=3, unique=True))
    def restart_with_destinations(self, sinks: list[str]) -> None:
        self.close_cleanly()
        self.open(sinks)

    @precondition(lambda self: self.spool is not None and not self.disk_full)
    @rule()
    def fill_the_disk(self) -> None:
        spool = self.spool
        assert spool is not None and spool._db is not None
        db = spool._db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        self.disk_full = True

    @precondition(lambda self: self.spool is not None and self.disk_full)
    @rule()
    def free_the_disk(self) -> None:
        spool = self.spool
        assert spool is not None and spool._db is not None
        spool._db.execute("PRAGMA max_page_count = 1073741823")
        self.disk_full = False

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def ids_only_grow(self) -> None:
        if self.spool is not None:
            assert self.spool._next_id > self.model.max_id

    @invariant()
    def depth_is_what_is_stored(self) -> None:
        spool = self.spool
        if spool is not None:
            stats = spool.stats()
            assert stats.depth >= 0 and all(lag >= 0 for lag in stats.lag.values())

    def teardown(self) -> None:
        try:
            if self.spool is None:
                return
            if self.disk_full:
                self.free_the_disk()
            self.flush()
            for _ in range(200):  # drain every destination
                before = {s: self.spool.position(s) for s in self.sinks}
                for sink in self.sinks:
                    self.deliver(sink, 50, True)
                if before == {s: self.spool.position(s) for s in self.sinks}:
                    break
            model = self.model
            for sink in self.sinks:
                missing = (model.owed[sink] & model.accepted) - model.received[sink]
                missing -= model.dropped
                assert not missing, f"{sink} never got {sorted(missing)[:5]}, nor were they dropped"
            self.close_cleanly()
        finally:
            self.loop.close()
            self.tmp.cleanup()


SpoolMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSpoolAgainstModel = SpoolMachine.TestCase


def test_a_crash_during_an_outage_never_gives_delivered_numbers_again() -> None:
    """The path the search finds least often, spelled out: the disk is full, readings go
    to a destination from memory, the process dies, the next run must not reuse their
    sequence numbers (a subscriber would drop the new readings as duplicates)."""
    machine = SpoolMachine()
    machine.start("drop_oldest", ["mqtt"], 1000)
    machine.fill_the_disk()
    machine.append("boiler", 3)
    machine.flush()  # fails: the spool is unhealthy and hands the readings out from memory
    machine.deliver("mqtt", 5, True)
    assert machine.model.received["mqtt"] == readings("boiler", 1, 3)
    machine.crash_and_start()
    machine.append("boiler", 1)  # asserts the number is above every delivered one
    assert machine.model.dropped == readings("boiler", 1, 3)  # reported: never stored
    machine.teardown()


def test_a_crash_leaves_sqlite_consistent(tmp_path: Path) -> None:
    """The premise of crash_inside_a_commit: an interrupted statement rolls back whole."""
    db = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    db.execute("CREATE TABLE t (x)")
    db.set_progress_handler(lambda: 1, 1)
    try:
        db.execute("BEGIN")
        db.execute("INSERT INTO t VALUES (1)")
    except sqlite3.OperationalError:
        pass
    db.set_progress_handler(None, 0)
    if db.in_transaction:
        db.execute("ROLLBACK")
    assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
