"""History and findings from a real spool file, read-only and bounded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mcptool.context.history import HistoryError, SpoolReader
from mcptool.gateway.spool import Kind, Spool


def poll(device: str, seq: int, ts: float, value: float) -> bytes:
    reading = {"device": device, "point": "t", "seq": seq, "ts": int(ts * 1000), "value": value,
               "quality": "good"}  # fmt: skip
    other = dict(reading, point="p", seq=seq + 1, value=-value)
    return json.dumps(
        {"device": device, "kind": "telemetry", "readings": [reading, other]}
    ).encode()


@pytest.fixture
async def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool.db"
    async with Spool(path, sinks=["mqtt"]) as spool:
        for i in range(10):
            spool.append(
                "boiler", 2 * i + 1, 2, 1000.0 + i, poll("boiler", 2 * i + 1, 1000.0 + i, i)
            )
        spool.append("pump", 1, 2, 1005.0, poll("pump", 1, 1005.0, 99.0))
        for i, severity in enumerate(("warning", "critical")):
            finding = {"type": "finding", "device": "boiler", "severity": severity}
            spool.append("boiler", i + 1, 1, 1003.0 + i, json.dumps(finding).encode(), Kind.FINDING)
        await spool.flush()
    return path


async def test_a_points_samples_in_a_time_range_oldest_first(spool: Path) -> None:
    samples, truncated = await SpoolReader(spool).samples("boiler", "t", 1002.0, 1006.0, 100)
    assert [(s.ts, s.value) for s in samples] == [(1002.0 + i, float(i + 2)) for i in range(5)]
    assert not truncated


async def test_the_newest_samples_within_the_limit_and_truncated_says_so(spool: Path) -> None:
    samples, truncated = await SpoolReader(spool).samples("boiler", "p", 0.0, 2000.0, 3)
    assert [s.value for s in samples] == [-7.0, -8.0, -9.0] and truncated


async def test_findings_newest_first_and_by_device(spool: Path) -> None:
    reader = SpoolReader(spool)
    records, truncated = await reader.findings("boiler", 0.0, 10)
    assert [r["severity"] for r in records] == ["critical", "warning"] and not truncated
    records, truncated = await reader.findings(None, 0.0, 1)
    assert [r["severity"] for r in records] == ["critical"] and truncated
    assert (await reader.findings("pump", 0.0, 10)) == ([], False)


async def test_the_reader_never_writes(spool: Path) -> None:
    reader = SpoolReader(spool)
    db = reader._connect()
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
        db.execute("DELETE FROM records")
    db.close()


async def test_a_missing_spool_names_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match=r"no spool at .*start the gateway"):
        await SpoolReader(tmp_path / "nope.db").samples("boiler", "t", 0.0, 1.0, 1)
