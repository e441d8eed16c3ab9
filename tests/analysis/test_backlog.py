"""The backlog keeps flagged windows across restarts, oldest first, within its bound."""

from __future__ import annotations

from pathlib import Path

from mcptool.analysis import Backlog


def test_jobs_survive_a_restart_in_order(tmp_path: Path) -> None:
    path = tmp_path / "analysis.db"
    backlog = Backlog(path, max_jobs=10)
    for start in (10.0, 20.0, 30.0):
        backlog.push("boiler", start, {"window": {"start": start}})
    first = backlog.oldest()
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
    oldest = reopened.oldest(exclude=[jobs[1].id])
    assert oldest is not None and oldest.window_start == 30.0


def test_a_full_backlog_drops_its_oldest_and_counts_it(tmp_path: Path) -> None:
    backlog = Backlog(tmp_path / "a.db", max_jobs=2)
    assert backlog.push("d", 1.0, {}) == []
    assert backlog.push("d", 2.0, {}) == []
    dropped = backlog.push("d", 3.0, {})
    assert [j.window_start for j in dropped] == [1.0]
    assert [j.window_start for j in backlog.pending()] == [2.0, 3.0]
    assert backlog.dropped == 1
