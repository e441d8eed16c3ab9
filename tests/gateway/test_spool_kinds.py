"""Every record carries its kind, stored in the spool: readers take it from there, not
from the device name or the payload. Spools written before kinds existed are migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mcptool.gateway.spool import Dropped, Kind, Spool, stream

# the records table as spools had it before kinds (commit 0817fd8 and earlier)
OLD_SCHEMA = """
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    seq_first INTEGER NOT NULL,
    count INTEGER NOT NULL,
    ts REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE positions (sink TEXT PRIMARY KEY, acked INTEGER NOT NULL);
CREATE TABLE devices (name TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


async def test_each_record_keeps_its_kind_in_memory_and_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Spool(path, sinks=["a"], tail_bytes=0) as spool:
        spool.append("boiler", spool.reserve("boiler", 3), 3, 1.0, b"poll")
        first = spool.reserve("boiler", 1, Kind.FINDING)
        spool.append("boiler", first, 1, 1.0, b"finding", Kind.FINDING)
        spool.append("boiler", spool.reserve("boiler", 1, Kind.STATUS), 1, 1.0, b"up", Kind.STATUS)
        await spool.flush()
        from_disk = await spool.fetch(0, 10)  # tail_bytes=0: read back from the file
    async with Spool(path, sinks=["a"]) as spool:
        after_restart = await spool.fetch(0, 10)
    for records in (from_disk, after_restart):
        assert [(r.device, r.kind, r.payload) for r in records] == [
            ("boiler", Kind.TELEMETRY, b"poll"),
            ("boiler", Kind.FINDING, b"finding"),
            ("boiler", Kind.STATUS, b"up"),
        ]


async def test_each_kind_has_its_own_sequence_numbers(tmp_path: Path) -> None:
    """A finding about a device does not take one of its readings' numbers: subscribers
    of the telemetry see no hole."""
    async with Spool(tmp_path / "s.db", sinks=["a"]) as spool:
        assert spool.reserve("boiler", 5) == 1
        assert spool.reserve("boiler", 1, Kind.FINDING) == 1
        assert spool.reserve("boiler", 1) == 6
        assert spool.last_seq("boiler", Kind.FINDING) == 1
    assert stream("boiler", Kind.FINDING) == "boiler/analysis"  # as spools before kinds


async def test_a_dropped_finding_is_counted_under_its_stream(tmp_path: Path) -> None:
    dropped: list[Dropped] = []
    async with Spool(
        tmp_path / "s.db", sinks=["a"], max_readings=1, policy="drop_newest", on_drop=dropped.append
    ) as spool:
        spool.append("boiler", 1, 1, 1.0, b"poll")
        spool.append("boiler", 1, 1, 1.0, b"finding", Kind.FINDING)
        await spool.flush()
    assert [(d.device, d.seq_first) for d in dropped] == [("boiler/analysis", 1)]


async def test_a_spool_made_before_kinds_is_migrated_on_open(tmp_path: Path) -> None:
    """Old files stored a finding under the pseudo-device "<device>/analysis": on open
    the column is added (telemetry by default) and those rows become findings of their
    device, with their numbers; nothing is lost or sent twice."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.executemany(
        "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)",
        [
            (1, "boiler", 1, 2, 1.0, b'{"readings":[]}'),
            (2, "boiler/analysis", 1, 1, 2.0, b'{"type":"finding"}'),
            (3, "boiler", 3, 2, 3.0, b'{"readings":[]}'),
            (4, "x/analysis/analysis", 4, 1, 4.0, b"{}"),  # only the last suffix goes
        ],
    )
    db.executemany("INSERT INTO devices VALUES (?, ?)", [("boiler", 5), ("boiler/analysis", 2)])
    db.execute("INSERT INTO positions VALUES ('mqtt', 1)")
    db.commit()
    db.close()
    async with Spool(path, sinks=["mqtt"]) as spool:
        records = await spool.fetch(spool.position("mqtt"), 10)
        assert [(r.id, r.device, r.kind, r.seq_first) for r in records] == [
            (2, "boiler", Kind.FINDING, 1),
            (3, "boiler", Kind.TELEMETRY, 3),
            (4, "x/analysis", Kind.FINDING, 4),
        ]
        # the numbers go on where the old file left them, per kind
        assert spool.reserve("boiler", 1) == 5
        assert spool.reserve("boiler", 1, Kind.FINDING) == 2
        spool.append("boiler", 2, 1, 5.0, b"new finding", Kind.FINDING)
        await spool.flush()
        [new] = await spool.fetch(4, 10)
        assert (new.id, new.kind) == (5, Kind.FINDING)
    async with Spool(path, sinks=["mqtt"]) as spool:  # opening again migrates nothing twice
        records = await spool.fetch(spool.position("mqtt"), 10)
        assert [(r.device, r.kind) for r in records][-1] == ("boiler", Kind.FINDING)
        assert len(records) == 4
