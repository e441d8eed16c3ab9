"""The spool: records survive a restart until every destination acknowledged them, each
destination resumes at its own position, sequence numbers continue, and the size limit
drops readings by policy, counted and reported, never silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcptool.gateway.spool import Dropped, Spool, SpoolError


async def fill(spool: Spool, device: str, polls: int, size: int = 10) -> None:
    for _ in range(polls):
        first = spool.reserve(device, size)
        spool.append(device, first, size, 1.0, f'{{"seq":{first}}}'.encode())
    await spool.flush()


async def test_records_are_fetched_in_order_after_commit(tmp_path: Path) -> None:
    async with Spool(tmp_path / "s.db", sinks=["a"]) as spool:
        await fill(spool, "d", 3)
        records = await spool.fetch(spool.position("a"), 10)
    assert [(r.seq_first, r.count) for r in records] == [(1, 10), (11, 10), (21, 10)]
    assert [r.payload for r in records] == [b'{"seq":1}', b'{"seq":11}', b'{"seq":21}']


async def test_unacknowledged_records_and_positions_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Spool(path, sinks=["mqtt", "uplink"]) as spool:
        await fill(spool, "d", 4)
        records = await spool.fetch(0, 10)
        spool.ack("mqtt", records[2].id)
        spool.ack("uplink", records[0].id)
    async with Spool(path, sinks=["mqtt", "uplink"]) as spool:
        assert [r.seq_first for r in await spool.fetch(spool.position("mqtt"), 10)] == [31]
        assert [r.seq_first for r in await spool.fetch(spool.position("uplink"), 10)] == [
            11,
            21,
            31,
        ]
        assert spool.stats().depth == 30  # records 2-4: the uplink still needs them
        assert spool.reserve("d", 1) == 41  # sequence numbers continue


async def test_records_every_destination_acknowledged_are_deleted(tmp_path: Path) -> None:
    async with Spool(tmp_path / "s.db", sinks=["a", "b"]) as spool:
        await fill(spool, "d", 5)
        last = (await spool.fetch(0, 10))[-1].id
        spool.ack("a", last)
        await spool.flush()
        assert spool.stats().depth == 50
        spool.ack("b", last)
        await spool.flush()
        assert spool.stats().depth == 0
        assert spool.stats().lag == {"a": 0, "b": 0}


async def test_a_new_destination_starts_with_everything_undelivered(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Spool(path, sinks=["a"]) as spool:
        await fill(spool, "d", 3)
        spool.ack("a", (await spool.fetch(0, 10))[0].id)
    async with Spool(path, sinks=["a", "b"]) as spool:
        assert [r.seq_first for r in await spool.fetch(spool.position("b"), 10)] == [11, 21]


async def test_drop_oldest_makes_room_and_reports_what_it_dropped(tmp_path: Path) -> None:
    dropped: list[Dropped] = []
    async with Spool(
        tmp_path / "s.db",
        sinks=["a"],
        max_readings=30,
        policy="drop_oldest",
        on_drop=dropped.append,
    ) as spool:
        await fill(spool, "d", 5)
        records = await spool.fetch(spool.position("a"), 10)
        assert [r.seq_first for r in records] == [21, 31, 41]
        assert spool.stats().depth == 30
        assert spool.stats().dropped == 20
        assert spool.dropped == {"d": 20}
    assert [(d.device, d.seq_first, d.seq_last) for d in dropped] == [("d", 1, 10), ("d", 11, 20)]
    async with Spool(tmp_path / "s.db", sinks=["a"]) as spool:
        assert spool.dropped == {"d": 20}  # the count is kept across restarts


async def test_drop_newest_refuses_new_readings_and_reports_them(tmp_path: Path) -> None:
    dropped: list[Dropped] = []
    async with Spool(
        tmp_path / "s.db",
        sinks=["a"],
        max_readings=30,
        policy="drop_newest",
        on_drop=dropped.append,
    ) as spool:
        await fill(spool, "d", 5)
        records = await spool.fetch(spool.position("a"), 10)
        assert [r.seq_first for r in records] == [1, 11, 21]
        assert spool.reserve("d", 1) == 51  # the dropped numbers are not given again
    assert [(d.seq_first, d.seq_last, d.reason) for d in dropped] == [
        (31, 40, "spool full"),
        (41, 50, "spool full"),
    ]


async def test_old_records_beyond_the_memory_tail_are_read_from_disk(tmp_path: Path) -> None:
    async with Spool(tmp_path / "s.db", sinks=["a"], tail_bytes=30) as spool:
        await fill(spool, "d", 20)
        records = await spool.fetch(0, 100)
    assert [r.seq_first for r in records] == list(range(1, 201, 10))


async def test_lag_and_age_count_what_a_destination_has_not_acknowledged(tmp_path: Path) -> None:
    async with Spool(tmp_path / "s.db", sinks=["a"]) as spool:
        await fill(spool, "d", 4)
        spool.ack("a", (await spool.fetch(0, 10))[0].id)
        assert spool.lag("a") == 30
        assert spool.lag_seconds("a") > 0


def test_an_unusable_spool_path_is_one_clear_error(tmp_path: Path) -> None:
    import asyncio

    from mcptool.gateway.spool import SpoolError

    blocker = tmp_path / "file"
    blocker.write_text("")

    async def open_it() -> None:
        async with Spool(blocker / "s.db", sinks=["a"]):
            pass

    with pytest.raises(SpoolError, match="cannot open"):
        asyncio.run(open_it())


async def test_a_destinations_drop_is_counted_apart_handed_on_and_kept_across_restarts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    reported: list[Dropped] = []
    uplink_drop = Dropped("d", 5, 7, "uplink: too big", "uplink", "over_frame")
    async with Spool(path, sinks=["uplink"], max_readings=10, on_drop=reported.append) as spool:
        await fill(spool, "e", 2)  # 20 readings: the limit drops 10 of them
        second = Dropped("d", 9, 9, "uplink: too big", "uplink", "over_frame")
        spool.report_drop(uplink_drop)
        spool.report_drop(second)
        assert [d for d in reported if d.where == "uplink"] == [uplink_drop, second]
    async with Spool(path, sinks=["uplink"]) as spool:
        assert spool.sink_dropped("uplink") == {"d": 4}
        assert spool.sink_dropped("mqtt") == {}
        assert spool.dropped == {"e": 10}  # the limit policy's count stays its own
        assert spool.stats().dropped == 10
        assert spool.drops() == {
            ("spool", "e", "spool_full"): 10,
            ("uplink", "d", "over_frame"): 4,
        }


async def test_the_spool_does_not_take_its_own_drops_as_a_destinations(tmp_path: Path) -> None:
    async with Spool(tmp_path / "s.db", sinks=["a"]) as spool:
        with pytest.raises(ValueError, match="destination"):
            spool.report_drop(Dropped("d", 1, 1, "spool full"))


async def test_after_a_clean_stop_new_records_are_still_delivered(tmp_path: Path) -> None:
    """Issue 12's first loss: a clean stop leaves no records, and ids used to start at 1
    again, under every destination's stored position: new records looked delivered."""
    path = tmp_path / "s.db"
    for run in range(3):
        async with Spool(path, sinks=["jsonl"]) as spool:
            await fill(spool, "d", 4)
            records = await spool.fetch(spool.position("jsonl"), 100)
            assert [r.seq_first for r in records] == [40 * run + 1 + 10 * i for i in range(4)]
            spool.ack("jsonl", records[-1].id)


async def test_a_full_disk_is_an_outage_not_a_loss(tmp_path: Path) -> None:
    """The write fails: the spool says so, keeps the readings, hands them out from memory,
    and stores them once the disk has room again."""
    health: list[tuple[bool, str]] = []
    path = tmp_path / "s.db"
    async with Spool(path, sinks=["a"], on_health=lambda ok, why: health.append((ok, why))) as s:
        assert s._db is not None
        pages = s._db.execute("PRAGMA page_count").fetchone()[0]
        s._db.execute(f"PRAGMA max_page_count = {pages}")
        first = s.reserve("d", 2)
        s.append("d", first, 2, 1.0, b"x" * 5000)
        with pytest.raises(SpoolError, match="disk is full"):
            await s.flush()
        assert not s.healthy and s.write_errors == 1 and health == [(False, s.last_error)]
        records = await s.fetch(s.position("a"), 10)  # delivered from memory meanwhile
        assert [(r.seq_first, r.count) for r in records] == [(1, 2)]
        s._db.execute("PRAGMA max_page_count = 1073741823")
        await s.flush()
        assert s.healthy and health[-1][0] is True
    async with Spool(path, sinks=["b"]) as s:  # stored: a new destination gets it
        assert [r.seq_first for r in await s.fetch(s.position("b"), 10)] == [1]
