"""The backlog keeps flagged windows across restarts, oldest first, within its bound."""

from __future__ import annotations

from pathlib import Path

from mcptool.analysis import Backlog


def test_jobs_survive_a_restart_in_order(tmp_path: Path) -> None:
    path = tmp_path / "analysis.db"
    backlog = Backlog(path, max_jobs=10)
    for start in (10.0, 20.0, 30.0):
        backlog.push("boiler", start, {"window": {"start": start}})
    first = backlog.next()
    assert first is not None
    backlog.mark_statistics_sent(first.id)
    backlog.store_finding(first.id, {"summary": "x"})
    backlog.close()

    reopened = Backlog(path, max_jobs=10)
    jobs = reopened.pending()
    assert [j.window_start for j in jobs] == [10.0, 20.0, 30.0]
    assert jobs[0].statistics_sent and jobs[0].finding == {"summary": "x"}
    assert not jobs[1].statistics_sent and jobs[1].finding is None
    reopened.remove(jobs[0].id)
    oldest = reopened.next(exclude=[jobs[1].id])
    assert oldest is not None and oldest.window_start == 30.0


def test_a_full_backlog_drops_its_oldest_and_counts_it(tmp_path: Path) -> None:
    backlog = Backlog(tmp_path / "a.db", max_jobs=2)
    assert backlog.push("d", 1.0, {}) == []
    assert backlog.push("d", 2.0, {}) == []
    dropped = backlog.push("d", 3.0, {})
    assert [j.window_start for j in dropped] == [1.0]
    assert [j.window_start for j in backlog.pending()] == [2.0, 3.0]
    assert backlog.dropped == 1


def test_a_critical_window_is_served_before_older_warnings(tmp_path: Path) -> None:
    backlog = Backlog(tmp_path / "a.db", max_jobs=10)
    for start, rank in ((1.0, 1), (2.0, 1), (3.0, 2), (4.0, 2), (5.0, 0)):
        backlog.push("d", start, {"rank": rank})
    served = []
    while (job := backlog.next()) is not None:
        served.append(job.window_start)
        backlog.remove(job.id)
    assert served == [3.0, 4.0, 1.0, 2.0, 5.0]


def test_a_full_backlog_drops_the_mildest_window_not_a_critical_one(tmp_path: Path) -> None:
    backlog = Backlog(tmp_path / "a.db", max_jobs=2)
    backlog.push("d", 1.0, {"rank": 2})
    backlog.push("d", 2.0, {"rank": 1})
    dropped = backlog.push("d", 3.0, {"rank": 2})
    assert [j.window_start for j in dropped] == [2.0]
    assert [j.window_start for j in backlog.pending()] == [1.0, 3.0]


def test_jobs_from_before_ranks_count_as_warnings(tmp_path: Path) -> None:
    backlog = Backlog(tmp_path / "a.db", max_jobs=10)
    backlog.push("d", 1.0, {"rank": 0})
    backlog.push("d", 2.0, {})
    job = backlog.next()
    assert job is not None and job.window_start == 2.0
