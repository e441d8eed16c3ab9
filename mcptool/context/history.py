"""History and findings, read from the gateway's spool file, read-only.

The spool (SQLite, WAL) is the gateway's; the context server opens it with
``mode=ro``, so it can never write, lock out the gateway's writer, or change a
position. WAL lets readers and the one writer run at once. What it holds is what the
spool still keeps: every record until each sink acknowledged it (docs/CONTEXT.md).

Results are bounded: at most ``MAX_SAMPLES`` samples of a point and ``MAX_FINDINGS``
findings a call, the newest ones, and a ``truncated`` flag says when more matched.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MAX_FINDINGS", "MAX_SAMPLES", "HistoryError", "SpoolReader"]

MAX_SAMPLES = 1000
MAX_FINDINGS = 100
# records scanned for one answer: a bound on the work, whatever the time range
_MAX_ROWS = 20_000


class HistoryError(Exception):
    """The spool cannot be read: the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class Sample:
    ts: float
    value: Any
    quality: str
    seq: int


class SpoolReader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise HistoryError(
                f"no spool at {self.path}: start the gateway (`mcptool gateway run` or"
                " `mcptool context serve --gateway`) so that it records history"
            )
        try:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            db.execute("PRAGMA query_only = ON")
            return db
        except sqlite3.Error as exc:
            raise HistoryError(f"spool {self.path}: cannot open read-only ({exc})") from None

    async def samples(
        self, device: str, point: str, start: float, end: float, limit: int
    ) -> tuple[list[Sample], bool]:
        """``point``'s readings polled in [start, end], the newest ``limit``, oldest first."""
        return await asyncio.to_thread(self._samples, device, point, start, end, limit)

    def _samples(
        self, device: str, point: str, start: float, end: float, limit: int
    ) -> tuple[list[Sample], bool]:
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT payload FROM records WHERE device = ? AND kind = 'telemetry'"
                " AND ts >= ? AND ts <= ? ORDER BY id DESC LIMIT ?",
                (device, start, end, _MAX_ROWS),
            ).fetchall()
        except sqlite3.Error as exc:
            raise HistoryError(f"spool {self.path}: cannot read ({exc})") from None
        finally:
            db.close()
        out: list[Sample] = []
        truncated = len(rows) >= _MAX_ROWS
        for (payload,) in rows:
            for reading in json.loads(payload).get("readings", ()):
                if reading.get("point") != point:
                    continue
                if len(out) >= limit:
                    truncated = True
                    break
                out.append(
                    Sample(
                        ts=reading["ts"] / 1000.0,
                        value=reading.get("value"),
                        quality=reading.get("quality", "good"),
                        seq=reading.get("seq", 0),
                    )
                )
            if len(out) >= limit and truncated:
                break
        out.reverse()
        return out, truncated

    async def findings(
        self, device: str | None, start: float, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Analysis records (triggers, findings, errors) since ``start``, newest first."""
        return await asyncio.to_thread(self._findings, device, start, limit)

    def _findings(
        self, device: str | None, start: float, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        db = self._connect()
        query = "SELECT payload FROM records WHERE kind = 'finding' AND ts >= ?"
        args: list[Any] = [start]
        if device is not None:
            query += " AND device = ?"
            args.append(device)
        query += " ORDER BY id DESC LIMIT ?"
        args.append(limit + 1)
        try:
            rows = db.execute(query, args).fetchall()
        except sqlite3.Error as exc:
            raise HistoryError(f"spool {self.path}: cannot read ({exc})") from None
        finally:
            db.close()
        records = [json.loads(payload) for (payload,) in rows[:limit]]
        return records, len(rows) > limit
