"""`[spool] keep`: delivered records stay in the file for a time, as history for readers of
the file (the context server), without counting as waiting, lag or drops, and without
being sent again to a destination added later."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from mcptool.gateway.spool import Spool


def stored(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT seq_first FROM records ORDER BY id")]


async def fill(spool: Spool, now: float) -> None:
    spool.append("boiler", 1, 1, now - 3600, b"{}")  # polled an hour ago
    spool.append("boiler", 2, 1, now - 1, b"{}")  # polled a second ago
    await spool.flush()
    spool.ack("a", spool.committed_id)
    await spool.flush()


async def test_delivered_records_stay_for_keep_seconds_as_history(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    async with Spool(path, sinks=["a"], keep=60.0) as spool:
        await fill(spool, time.time())
        assert stored(path) == [2]  # the hour-old one went, the recent one stays
        stats = spool.stats()
        assert (stats.depth, stats.records, stats.lag, stats.dropped) == (0, 0, {"a": 0}, 0)
    # after a restart it is still history, not waiting; a new destination does not get it
    async with Spool(path, sinks=["a", "b"], keep=60.0) as spool:
        assert spool.stats().depth == 0
        assert spool.position("b") == spool.position("a")
        assert await spool.fetch(spool.position("b"), 10) == []
        spool.append("boiler", 3, 1, time.time(), b"{}")
        await spool.flush()
        assert [r.seq_first for r in await spool.fetch(spool.position("b"), 10)] == [3]
    assert stored(path) == [2, 3]


async def test_without_keep_delivered_records_go_at_once(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    async with Spool(path, sinks=["a"]) as spool:
        await fill(spool, time.time())
        assert stored(path) == []
