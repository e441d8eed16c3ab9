"""Nothing lost, the way users break it: the real `mcptool gateway run` restarted 20 times
(SIGTERM and SIGKILL alternately, at random moments, with and without a backlog, a
destination added on the way) against simulators and a real Mosquitto; a spool whose disk
fills up and frees again. Every reading reaches the subscriber or is named in a drop line;
duplicates are only identified resends (the same reading again)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mcptool.gateway.config import parse_config
from mcptool.gateway.gateway import Gateway
from simulators.modbus import ModbusSimulator
from tests.conftest import require_program
from tests.gateway.conftest import Broker, Subscriber, gateway_config, until

ROOT = Path(__file__).resolve().parents[2]


def chaos() -> ModuleType:
    """bench/chaos.py is the harness (a script, not a package): the test runs it as is."""
    spec = importlib.util.spec_from_file_location("bench_chaos", ROOT / "bench" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.peer
@pytest.mark.timeout(300)
async def test_twenty_restarts_and_a_full_disk_lose_nothing_unreported() -> None:
    require_program("mosquitto")
    result = await chaos().run(restarts=20, seed=7)
    print(json.dumps(result))
    assert result["restarts"] == 20 and result["SIGKILL"] == 10 and result["backlog_runs"] >= 4
    assert result["produced"] > 0 and result["jsonl_lines"] > 0
    assert result["lost"] == 0, result  # a healthy disk: nothing lost at all
    assert result["unreported_lost"] == 0
    assert result["conflicts"] == 0  # no sequence number given to two readings
    if "disk_episode" not in result:  # needs a tmpfs (root); in-process test below otherwise
        assert result["disk_said_degraded"] and result["disk_error_logged"]
        assert result["disk_recovered"] and result["disk_exit"] == 0
        assert result["disk_delivered_during_outage"] > 0
        assert result["disk_unreported_lost"] == 0 and result["disk_lost"] == 0


def fill_the_disk(spool: sqlite3.Connection, path: Path) -> None:
    """The spool's connection may not grow the file, and another one takes every free page
    (delivered records are deleted all the time, so free pages would keep it writing)."""
    filler = sqlite3.connect(path, isolation_level=None)
    filler.execute("CREATE TABLE IF NOT EXISTS filler (b BLOB)")
    pages = filler.execute("PRAGMA page_count").fetchone()[0]
    spool.execute(f"PRAGMA max_page_count = {pages}")
    filler.execute(f"PRAGMA max_page_count = {pages}")
    with contextlib.suppress(sqlite3.OperationalError):
        while True:
            filler.execute("INSERT INTO filler VALUES (zeroblob(1000))")
    filler.close()


@pytest.mark.peer
async def test_a_full_disk_keeps_delivering_from_memory_and_recovers(
    devices: ModbusSimulator, broker: Broker, subscriber: Subscriber, tmp_path: Path
) -> None:
    """SQLite's max_page_count is a disk that is full, deterministically. The gateway says
    so (status degraded, /metrics-ready counters), MQTT and JSON Lines keep getting
    readings from memory, and once the disk has room all is stored and nothing is lost."""
    config = parse_config(
        gateway_config(
            devices, tmp_path, mqtt_port=broker.port, jsonl={"path": str(tmp_path / "out.jsonl")}
        )
    )
    status = "mcptool/test/status"
    async with Gateway(config) as gw:
        await until(lambda: subscriber.count() >= 100)
        db = gw.spool._db
        assert db is not None
        fill_the_disk(db, tmp_path / "spool.db")
        await until(lambda: subscriber.retained.get(status, {}).get("state") == "degraded")
        assert not gw.status()["spool"]["ok"] and gw.spool.write_errors > 0
        assert "disk is full" in subscriber.retained[status]["spool_error"]
        during = subscriber.count()
        await until(lambda: subscriber.count() > during + 100, what="delivery from memory")
        db.execute("PRAGMA max_page_count = 1073741823")  # the disk has room again
        await until(lambda: subscriber.retained.get(status, {}).get("state") == "ok", 20)
    last = {d.name: gw.spool.last_seq(d.name) for d in config.devices}
    await until(lambda: not subscriber.missing(last), what="every reading")
    subscriber.check_nothing_lost(last)
    assert subscriber.conflicting == []
    lines = (tmp_path / "out.jsonl").read_bytes().splitlines()
    got = {(r["device"], r["seq"]) for line in lines for r in json.loads(line)["readings"]}
    assert got >= {(d, s) for d, n in last.items() for s in range(1, n + 1)}
