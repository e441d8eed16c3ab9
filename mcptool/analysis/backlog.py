"""The backlog: flagged windows waiting for the model, in SQLite, worst first.

A window enters the backlog the moment its triggers fire and leaves it only once its
finding was handed to the sink, so a busy or dead Ollama, or a killed gateway, loses no
window: after a restart the pipeline resumes from the table. Each row carries everything
the call needs (the messages, the schema, the statistics), so nothing else has to survive.

Why not the gateway's spool: that one stores readings with per-device sequence numbers
and per-sink positions; a backlog row is a job that changes state (statistics finding
sent, model answer received) and is deleted when done. The table may live in the same
SQLite file as the spool (WAL allows both connections).

The calls are few (a handful per flagged window) and WAL with ``synchronous=NORMAL``
commits without an fsync, so they run on the caller's thread rather than a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcptool.errors import McptoolError

__all__ = ["Backlog", "BacklogError", "Job"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS analysis_backlog (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    window_start REAL NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    statistics_sent INTEGER NOT NULL DEFAULT 0,
    job TEXT NOT NULL,
    finding TEXT
);
CREATE TABLE IF NOT EXISTS analysis_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


# a job's severity rank, kept in its JSON (rows from before ranks count as warnings, so
# no migration is needed): the worst is served first and, when full, the mildest dropped
_RANK = "coalesce(json_extract(job, '$.rank'), 1)"


class BacklogError(McptoolError):
    """The backlog file cannot be opened or written."""


@dataclass(slots=True)
class Job:
    """One flagged window: ``data`` holds the prompt messages, schema, triggers, statistics."""

    id: int
    device: str
    window_start: float
    enqueued_at: float
    attempts: int
    statistics_sent: bool
    data: dict[str, Any]
    finding: dict[str, Any] | None = None


class Backlog:
    """A bounded queue of jobs, the most severe first, then the oldest; when full, the
    mildest oldest job is dropped (and counted): a slow model owes at most ``max_jobs``
    windows, and what it drops is what matters least."""

    def __init__(self, path: Path | None, max_jobs: int) -> None:
        self.path = path
        self.max_jobs = max_jobs
        target = ":memory:" if path is None else str(path)
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise BacklogError(f"analysis backlog {target}: cannot open it ({exc})") from exc

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM analysis_backlog").fetchone()[0])

    @property
    def dropped(self) -> int:
        row = self._db.execute(
            "SELECT value FROM analysis_counters WHERE name = 'dropped'"
        ).fetchone()
        return int(row[0]) if row else 0

    def push(self, device: str, window_start: float, data: dict[str, Any]) -> list[Job]:
        """Store a job; returns the jobs dropped to stay within ``max_jobs`` (mildest,
        oldest)."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO analysis_backlog (device, window_start, enqueued_at, job)"
                    " VALUES (?, ?, ?, ?)",
                    (device, window_start, time.time(), json.dumps(data)),
                )
                excess = len(self) - self.max_jobs
                dropped: list[Job] = []
                if excess > 0:
                    dropped = self._rows(
                        f"SELECT * FROM analysis_backlog ORDER BY {_RANK}, id LIMIT ?", (excess,)
                    )
                    self._db.executemany(
                        "DELETE FROM analysis_backlog WHERE id = ?", [(j.id,) for j in dropped]
                    )
                    self._db.execute(
                        "INSERT INTO analysis_counters VALUES ('dropped', ?) ON CONFLICT(name)"
                        " DO UPDATE SET value = value + excluded.value",
                        (len(dropped),),
                    )
                return dropped
        except sqlite3.Error as exc:
            raise BacklogError(f"analysis backlog {self.path}: cannot write ({exc})") from exc

    def next(self, exclude: Iterable[int] = ()) -> Job | None:
        """The most severe job, the oldest of those first (``data["rank"]``: 2 critical)."""
        skip = list(exclude)
        marks = ",".join("?" * len(skip))
        where = f"WHERE id NOT IN ({marks})" if skip else ""
        jobs = self._rows(
            f"SELECT * FROM analysis_backlog {where} ORDER BY {_RANK} DESC, id LIMIT 1", skip
        )
        return jobs[0] if jobs else None

    def pending(self) -> list[Job]:
        return self._rows("SELECT * FROM analysis_backlog ORDER BY id", ())

    def mark_attempt(self, job_id: int) -> None:
        self._exec("UPDATE analysis_backlog SET attempts = attempts + 1 WHERE id = ?", (job_id,))

    def mark_statistics_sent(self, job_id: int) -> None:
        self._exec("UPDATE analysis_backlog SET statistics_sent = 1 WHERE id = ?", (job_id,))

    def store_finding(self, job_id: int, finding: dict[str, Any]) -> None:
        """Keep the model's finding, so a failed publish never costs a second model call."""
        self._exec(
            "UPDATE analysis_backlog SET finding = ? WHERE id = ?", (json.dumps(finding), job_id)
        )

    def remove(self, job_id: int) -> None:
        self._exec("DELETE FROM analysis_backlog WHERE id = ?", (job_id,))

    def _exec(self, sql: str, args: tuple[Any, ...]) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise BacklogError(f"analysis backlog {self.path}: cannot write ({exc})") from exc

    def _rows(self, sql: str, args: Iterable[Any]) -> list[Job]:
        cursor = self._db.execute(sql, tuple(args))
        return [
            Job(
                id=row[0],
                device=row[1],
                window_start=row[2],
                enqueued_at=row[3],
                attempts=row[4],
                statistics_sent=bool(row[5]),
                data=json.loads(row[6]),
                finding=json.loads(row[7]) if row[7] else None,
            )
            for row in cursor.fetchall()
        ]
