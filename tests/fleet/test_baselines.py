"""Device baselines in the cluster: whichever worker takes a device's window judges it
against the device's past windows, and each window advances the baseline once, whatever
worker died where."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.js.kv import VALID_KEY_RE

from mcptool.fleet import ClosedWindow, FleetIngest, FleetWorker, StreamSettings
from mcptool.fleet.baselines import (
    RECORD_VERSION,
    BaselineStore,
    Loaded,
    Stored,
    baseline_key,
    decode,
    encode,
)
from mcptool.fleet.ingest import connect
from mcptool.fleet.streams import ensure_consumer
from mcptool.fleet.subjects import WINDOWS_STREAM, WORKERS
from simulators.nats import NatsCluster
from simulators.ollama import OllamaSimulator
from tests.fleet.conftest import until_analysed
from tests.fleet.processes import start_worker
from tests.fleet.stream_reader import finding_records, findings

BASE_MS = 1_700_000_000_000
WINDOW_S = 5
FIRST = BASE_MS // 1000 // WINDOW_S  # index of the first window
SETTINGS = StreamSettings(ack_wait_s=2.0)  # a dead worker's window moves on after 2 s


# -- the value, without a cluster ------------------------------------------------------
def state_of(points: int, windows: int) -> Any:
    series = [0.5] * windows
    baseline = {
        f"p{i}": {"means": series, "stds": series, "varied": [True] * windows,
                  "noises": series, "change_rates": series}
        for i in range(points)
    }  # fmt: skip
    return lambda keep: {
        "version": 1,
        "points": {},
        "baseline": {n: {k: v[-keep:] for k, v in s.items()} for n, s in baseline.items()},
    }


@given(
    st.lists(st.integers(0, 2**40), min_size=1, max_size=30, unique=True),
    st.floats(0.1, 3600, allow_nan=False),
)
def test_a_value_reads_back_as_it_was_written(windows: list[int], window_s: float) -> None:
    windows.sort()
    body = encode(state_of(3, len(windows)), windows, window_s)
    assert body is not None
    assert decode(body) == Stored(window_s, tuple(windows), state_of(3, len(windows))(len(windows)))


@given(st.binary(max_size=200) | st.builds(lambda v: json.dumps(v).encode(), st.dictionaries(
    st.sampled_from(["version", "window_s", "windows", "state"]),
    st.none() | st.integers() | st.floats() | st.lists(st.integers(), max_size=2) | st.text(),
)))  # fmt: skip
def test_anything_else_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode(body)


def test_a_newer_version_is_refused() -> None:
    body = encode(state_of(1, 2), [1, 2], 5.0)
    assert body is not None
    value = json.loads(body)
    with pytest.raises(ValueError, match="version"):
        decode(json.dumps({**value, "version": RECORD_VERSION + 1}).encode())


def test_a_value_too_large_keeps_its_newest_windows_or_is_not_written() -> None:
    full = encode(state_of(20, 30), list(range(30)), 5.0)
    assert full is not None
    halved = encode(state_of(20, 30), list(range(30)), 5.0, limit=len(full) - 1)
    assert halved is not None and len(halved) < len(full)
    stored = decode(halved)
    assert stored.windows == tuple(range(15, 30))
    assert len(stored.state["baseline"]["p0"]["means"]) == 15
    assert encode(state_of(20, 30), list(range(30)), 5.0, limit=100) is None


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_every_device_has_a_valid_key_of_its_own(node: str, device: str) -> None:
    key = baseline_key(node, device)
    assert VALID_KEY_RE.match(key)
    assert baseline_key(node + "x", device) != key
    assert baseline_key(node, device + "x") != key


def test_only_a_window_newer_than_the_newest_taken_moves_the_baseline() -> None:
    stored = Stored(5.0, (3, 4, 6), {})
    assert [stored.takes(i) for i in (4, 6, 5, 7)] == [False, False, False, True]


# -- the bucket ------------------------------------------------------------------------
async def test_two_writers_never_both_advance_the_baseline(nats_cluster: NatsCluster) -> None:
    nc = await connect(nats_cluster.urls, "test")
    try:
        store = await BaselineStore.open(nc.jetstream(timeout=5), SETTINGS)
        both = await store.load("n", "d", 5.0)  # two workers read the same revision
        replayed: list[Loaded] = []

        def replay(newer: Loaded) -> Any:
            replayed.append(newer)
            return state_of(1, 5), newer

        assert await store.advance(both, 11, 5.0, 30, state_of(1, 1), replay) == "advanced"
        # the other one had window 10, finished later: older than what is stored
        assert await store.advance(both, 10, 5.0, 30, state_of(1, 1), replay) == "kept"
        # and a third had window 12: it goes on top of 11, applied again there
        assert await store.advance(both, 12, 5.0, 30, state_of(1, 1), replay) == "advanced"
        assert [r.stored.windows if r.stored else None for r in replayed] == [(11,), (11,)]
        after = await store.load("n", "d", 5.0)
        assert after.stored is not None and after.stored.windows == (11, 12)
        # redelivered: taken already
        assert await store.advance(after, 12, 5.0, 30, state_of(1, 1), replay) == "kept"
    finally:
        await nc.close()


async def test_an_unreadable_value_is_reported_once_and_replaced(
    nats_cluster: NatsCluster, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await connect(nats_cluster.urls, "test")
    try:
        store = await BaselineStore.open(nc.jetstream(timeout=5), SETTINGS)
        await store.kv.put(baseline_key("n", "d"), b"\x00 not a baseline")
        with caplog.at_level(logging.WARNING, "mcptool.fleet.baselines"):
            first = await store.load("n", "d", 5.0)
            again = await store.load("n", "d", 5.0)
        assert first.stored is None and again.stored is None and first.revision > 0
        assert len([r for r in caplog.records if "cannot be used" in r.message]) == 1
        assert await store.advance(first, 7, 5.0, 30, state_of(1, 1), _no_replay) == "advanced"
        replaced = await store.load("n", "d", 5.0)
        assert replaced.stored is not None and replaced.stored.windows == (7,)
        # a baseline of another window length is not this one's either
        assert (await store.load("n", "d", 10.0)).stored is None
    finally:
        await nc.close()


def _no_replay(newer: Loaded) -> Any:
    raise AssertionError("nothing wrote in between")


# -- workers ---------------------------------------------------------------------------
def poll(index: int, i: int, anomaly: bool) -> bytes:
    """Reading ``i`` of window ``index``: three live signals; in the anomaly window the
    temperature freezes, the pressure's noise vanishes and the flow jumps."""
    w = index
    temp = 61.25 if anomaly else 60.0 + math.sin(i + w)
    pressure = 2.0 + (1e-5 if anomaly else 0.05) * math.sin(i * 1.3 + w)
    flow = (70.0 if anomaly else 50.0) + math.sin(i * 1.7 + w * 0.3)
    return json.dumps(
        {
            "device": "boiler",
            "kind": "telemetry",
            "ts": BASE_MS + (w * WINDOW_S + i) * 1000,
            "readings": [
                {"point": "temperature", "value": temp, "unit": "°C"},
                {"point": "pressure", "value": pressure, "unit": "bar"},
                {"point": "flow", "value": flow, "unit": "m3/h"},
            ],
        }
    ).encode()


class Site:
    """node-1's boiler, a window at a time (the next window's first reading closes it)."""

    def __init__(self, ingest: FleetIngest, anomaly: int) -> None:
        self.ingest = ingest
        self.anomaly = anomaly
        self.seq = 0
        self.sent = 0

    async def close_windows(self, upto: int) -> None:
        """Readings until windows ``0..upto - 1`` are closed."""
        while self.sent < upto * WINDOW_S + 1:
            w, i = divmod(self.sent, WINDOW_S)
            self.seq += 1
            await self.ingest.commit("node-1", [(self.seq, poll(w, i, w == self.anomaly))])
            self.sent += 1


async def until(predicate: Any, timeout: float = 60.0) -> None:
    async def check() -> None:
        while not await predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(check(), timeout)


async def found(ingest: FleetIngest, count: int) -> bool:
    return sum((await findings(ingest._js)).values()) >= count


async def stored_windows(ingest: FleetIngest) -> tuple[Stored, int]:
    store = await BaselineStore.open(ingest._js, SETTINGS)
    loaded = await store.load("node-1", "boiler", float(WINDOW_S))
    assert loaded.stored is not None
    return loaded.stored, len(loaded.stored.state["baseline"]["temperature"]["means"])


def rules_of(record: dict[str, Any]) -> set[tuple[str, str]]:
    return {(t["rule"], p) for t in record.get("triggers", []) for p in t["points"]}


async def test_a_device_continued_by_another_worker_gets_its_stuck_flat_and_zscore_triggers(
    nats_cluster: NatsCluster,
) -> None:
    async with (
        OllamaSimulator() as ollama,
        FleetIngest(nats_cluster.urls, window_s=WINDOW_S, settings=SETTINGS) as ingest,
    ):
        await ensure_consumer(ingest._js, SETTINGS)
        site = Site(ingest, anomaly=7)
        await site.close_windows(6)
        async with FleetWorker(nats_cluster.urls, ollama.url, settings=SETTINGS) as first:
            await until_analysed(first, 6)  # the baseline: windows 0..5
        await site.close_windows(8)
        async with FleetWorker(nats_cluster.urls, ollama.url, settings=SETTINGS) as second:
            await until_analysed(second, 2)  # 6, and the anomaly in 7
        records = {r["window_index"] - FIRST: r for r in await finding_records(ingest._js)}
        stored, means = await stored_windows(ingest)
    assert rules_of(records[7]) >= {
        ("stuck", "temperature"),
        ("flatline", "pressure"),
        ("zscore", "flow"),
    }
    routine = {("every_window", p) for p in ("temperature", "pressure", "flow")}
    assert [rules_of(records[w]) for w in range(7)] == [routine] * 7
    assert stored.windows == tuple(FIRST + w for w in range(8)) and means == 8


async def test_a_worker_that_dies_after_advancing_and_before_its_ack_advances_nothing_twice(
    nats_cluster: NatsCluster,
) -> None:
    async with (
        OllamaSimulator() as ollama,
        FleetIngest(nats_cluster.urls, window_s=WINDOW_S, settings=SETTINGS) as ingest,
    ):
        js = ingest._js
        await ensure_consumer(js, SETTINGS)
        await Site(ingest, anomaly=-1).close_windows(1)
        async with FleetWorker(nats_cluster.urls, ollama.url, settings=SETTINGS) as dying:
            taken = await (await js.pull_subscribe_bind(WORKERS, stream=WINDOWS_STREAM)).fetch(1)
            analysed = await dying.work(ClosedWindow.from_json(json.loads(taken[0].data)))
            record = analysed.record
            record.pop("traceparent", None)
            await js.publish(
                "fleet.findings.node-1.boiler",
                json.dumps(record).encode(),
                headers={"Nats-Msg-Id": record["id"]},
            )
            assert analysed.advance is not None
            assert await analysed.advance() == "advanced"
        # never acknowledged: after ack_wait another worker gets it
        async with FleetWorker(nats_cluster.urls, ollama.url, settings=SETTINGS) as survivor:
            await until_analysed(survivor, 1)
        stored, means = await stored_windows(ingest)
    assert survivor.baseline_outcomes == {"kept": 1}
    assert stored.windows == (FIRST,) and means == 1


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_worker_killed_mid_window_leaves_each_window_in_the_baseline_once(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    async with (
        # every model call takes a while: the kill lands inside a window
        OllamaSimulator(token_delay=0.02, parallel=2) as ollama,
        FleetIngest(nats_cluster.urls, window_s=WINDOW_S, settings=SETTINGS) as ingest,
    ):
        js = ingest._js
        await ensure_consumer(js, SETTINGS)
        site = Site(ingest, anomaly=-1)
        url = nats_cluster.url
        first = await asyncio.to_thread(start_worker, url, ollama.url, tmp_path / "w1.log")
        survivor = None
        try:
            for w in range(8):
                await site.close_windows(w + 1)
                if w == 4:  # the first worker takes window 4 and dies with it

                    async def taken() -> bool:
                        return (await js.consumer_info(WINDOWS_STREAM, WORKERS)).num_ack_pending > 0

                    await until(taken)
                    first.kill()
                    survivor = await asyncio.to_thread(
                        start_worker, url, ollama.url, tmp_path / "w2.log"
                    )
                await until(lambda w=w: found(ingest, w + 1))
            stored, means = await stored_windows(ingest)
            counts = await findings(js)
        finally:
            first.stop()
            if survivor is not None:
                survivor.stop()
    assert first.process.returncode == -9
    assert stored.windows == tuple(FIRST + w for w in range(8)) and means == 8
    assert set(counts.values()) == {1} and len(counts) == 8
