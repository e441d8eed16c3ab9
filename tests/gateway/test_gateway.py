"""The gateway end to end, in-process: simulated devices, a real Mosquitto, a subscriber
checking every device's sequence numbers. Nothing produced may be lost."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcptool.gateway import Dropped, Gateway, Record, parse_config
from simulators.modbus import DeviceProfile, Fault, ModbusSimulator
from simulators.modbus import Point as SimPoint
from tests.gateway.conftest import (
    KEY,
    Broker,
    Hub,
    Subscriber,
    float_profile,
    gateway_config,
    toml,
    until,
)

ROOT = Path(__file__).resolve().parents[2]


def produced(gw: Gateway) -> dict[str, int]:
    return {d.name: gw.spool.last_seq(d.name) for d in gw.config.devices}


async def test_every_reading_arrives_once_with_its_fields(
    devices: ModbusSimulator, broker: Broker, subscriber: Subscriber, tmp_path: Path
) -> None:
    config = parse_config(gateway_config(devices, tmp_path, mqtt_port=broker.port))
    async with Gateway(config) as gw:
        await until(lambda: subscriber.count() >= 300)
        await gw.wait_delivered()
        await until(lambda: subscriber.count() == sum(produced(gw).values()))
        status = subscriber.retained["mcptool/test/d1/status"]
        assert status["status"] == "online"
    subscriber.check_nothing_lost(produced(gw))
    assert subscriber.duplicates == 0
    reading = subscriber.seen["d1"][1]
    assert set(reading) == {"device", "point", "seq", "ts", "value", "quality"}
    assert (reading["device"], reading["point"], reading["quality"]) == ("d1", "p0", "good")
    assert isinstance(reading["value"], float)


async def test_a_clean_stop_says_offline_for_the_gateway_and_every_device(
    devices: ModbusSimulator, broker: Broker, subscriber: Subscriber, tmp_path: Path
) -> None:
    """Issue 12: the sinks used to be cancelled before the offline status went out, so
    the broker kept saying online after a clean stop."""
    config = parse_config(gateway_config(devices, tmp_path, mqtt_port=broker.port))
    names = [f"mcptool/test/{d.name}/status" for d in config.devices]
    async with Gateway(config):
        await until(
            lambda: all(
                subscriber.retained.get(t, {}).get("status") == "online"
                for t in [*names, "mcptool/test/status"]
            )
        )
    await until(
        lambda: all(
            subscriber.retained[t]["status"] == "offline" for t in [*names, "mcptool/test/status"]
        ),
        what="offline statuses",
    )
    assert {subscriber.retained[t]["reason"] for t in names} == {"gateway stopped"}


async def test_a_broker_outage_of_many_polls_loses_nothing(
    devices: ModbusSimulator, broker: Broker, subscriber: Subscriber, tmp_path: Path
) -> None:
    config = parse_config(gateway_config(devices, tmp_path, mqtt_port=broker.port))
    async with Gateway(config) as gw:
        await until(lambda: subscriber.count() >= 100)
        broker.stop()
        polls_before = gw.produced
        # the outage spans many poll cycles (3 devices x 10 points, every 50 ms)
        await until(lambda: gw.produced - polls_before >= 30 * 30, timeout=30)
        assert gw.spool.stats().depth > 0
        await broker.started()
        await until(lambda: gw.forwarders[0].connects >= 2, what="reconnect")
        await gw.wait_delivered()
        final = produced(gw)
        await until(lambda: not subscriber.missing(final), what="all readings")
    subscriber.check_nothing_lost(produced(gw))


async def test_devices_going_silent_and_coming_back_lose_nothing(
    devices: ModbusSimulator, broker: Broker, subscriber: Subscriber, tmp_path: Path
) -> None:
    config = parse_config(gateway_config(devices, tmp_path, mqtt_port=broker.port))
    async with Gateway(config) as gw:
        await until(lambda: subscriber.count("d0") >= 50)
        silence = devices.add_fault(Fault(kind="silence", device="d0"))
        await until(
            lambda: (
                subscriber.retained.get("mcptool/test/d0/status", {}).get("status") == "offline"
            ),
            what="d0 offline",
        )
        others = subscriber.count("d1")
        await until(lambda: subscriber.count("d1") >= others + 100, what="d1 keeps going")
        devices.remove_fault(silence)
        await until(lambda: subscriber.retained["mcptool/test/d0/status"]["status"] == "online")
        await gw.wait_delivered()
        final = produced(gw)
        await until(lambda: not subscriber.missing(final))
    subscriber.check_nothing_lost(produced(gw))
    assert subscriber.duplicates == 0


async def test_metrics_show_polls_errors_spool_and_sinks(
    devices: ModbusSimulator, broker: Broker, tmp_path: Path
) -> None:
    raw = gateway_config(devices, tmp_path, mqtt_port=broker.port, metrics={"port": 0})
    raw["devices"][2]["points"].append({"name": "missing", "address": 500})
    async with Gateway(parse_config(raw)) as gw:
        await until(lambda: gw.produced >= 200)
        assert gw.metrics_port
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{gw.metrics_port}/metrics")).text
    for name in (
        'mcptool_gateway_polls_total{device="d0"}',
        'mcptool_gateway_poll_errors_total{device="d2",kind="illegal_address"}',
        "mcptool_gateway_poll_duration_seconds_bucket",
        "mcptool_gateway_spool_depth_readings",
        "mcptool_gateway_spool_oldest_age_seconds",
        'mcptool_gateway_sink_lag_readings{sink="mqtt"}',
        'mcptool_gateway_sink_state{sink="mqtt",state="connected"} 1.0',
        'mcptool_gateway_device_up{device="d0"} 1.0',
    ):
        assert name in text, name


async def test_json_lines_get_every_reading_too(devices: ModbusSimulator, tmp_path: Path) -> None:
    out = tmp_path / "readings.jsonl"
    raw = gateway_config(devices, tmp_path, mqtt_port=None, jsonl={"path": str(out)})
    async with Gateway(parse_config(raw)) as gw:
        await until(lambda: gw.produced >= 300)
    seqs: dict[str, set[int]] = {}
    for line in out.read_text().splitlines():
        message = json.loads(line)
        seqs.setdefault(message["device"], set()).update(r["seq"] for r in message["readings"])
    assert {d: max(s) for d, s in seqs.items()} == produced(gw)
    assert all(s == set(range(1, max(s) + 1)) for s in seqs.values())


def produced_in(spool: Path) -> dict[str, int]:
    with sqlite3.connect(spool) as db:
        return {name: seq - 1 for name, seq in db.execute("SELECT name, next_seq FROM devices")}


async def test_a_gateway_killed_with_sigkill_and_restarted_loses_nothing(
    devices: ModbusSimulator, broker: Broker, subscriber: Subscriber, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(toml(gateway_config(devices, tmp_path, mqtt_port=broker.port)))
    command = [sys.executable, "-m", "mcptool", "gateway", "run", "--config", str(config)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    gateway = await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT)
    try:
        await until(lambda: subscriber.count() >= 300, timeout=30, what="first readings")
        gateway.send_signal(signal.SIGKILL)
        await gateway.wait()
        # the broker publishes the gateway's will
        await until(
            lambda: subscriber.retained.get("mcptool/test/status", {}).get("status") == "offline",
            what="the will",
        )
        before = subscriber.count()
        gateway = await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT)
        await until(lambda: subscriber.count() >= before + 300, timeout=30, what="restart")
        assert subscriber.retained["mcptool/test/status"]["status"] == "online"
    finally:
        if gateway.returncode is None:
            gateway.send_signal(signal.SIGTERM)
            await asyncio.wait_for(gateway.wait(), 20)
    assert gateway.returncode == 0
    final = produced_in(tmp_path / "spool.db")
    await until(lambda: not subscriber.missing(final), timeout=60, what="every reading")
    subscriber.check_nothing_lost(final)


async def test_a_backlog_spooled_during_an_outage_survives_sigkill(
    devices: ModbusSimulator, broker: Broker, subscriber: Subscriber, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(toml(gateway_config(devices, tmp_path, mqtt_port=broker.port)))
    spool = tmp_path / "spool.db"
    command = [sys.executable, "-m", "mcptool", "gateway", "run", "--config", str(config)]

    def backlog() -> int:
        with sqlite3.connect(spool) as db:
            return int(db.execute("SELECT COALESCE(SUM(count), 0) FROM records").fetchone()[0])

    gateway = await asyncio.create_subprocess_exec(*command, cwd=ROOT)
    try:
        await until(lambda: subscriber.count() >= 100, timeout=30, what="first readings")
        broker.stop()
        await until(lambda: backlog() >= 600, what="a backlog in the spool")
        gateway.send_signal(signal.SIGKILL)
        await gateway.wait()
        kept = backlog()
        assert kept >= 600
        await broker.started()
        gateway = await asyncio.create_subprocess_exec(*command, cwd=ROOT)
        final_before_restart = produced_in(spool)
        await until(
            lambda: not subscriber.missing(final_before_restart),
            timeout=30,
            what="the spooled backlog delivered after the restart",
        )
    finally:
        if gateway.returncode is None:
            gateway.send_signal(signal.SIGTERM)
            await asyncio.wait_for(gateway.wait(), 20)
    final = produced_in(spool)
    await until(lambda: not subscriber.missing(final), what="every reading")
    subscriber.check_nothing_lost(final)


async def test_a_full_spool_drops_by_policy_and_says_so(
    devices: ModbusSimulator, broker: Broker, subscriber: Subscriber, tmp_path: Path
) -> None:
    raw = gateway_config(devices, tmp_path, mqtt_port=broker.port)
    raw["spool"].update(max_readings=300, policy="drop_oldest")
    gw = Gateway(parse_config(raw))
    reported: list[Dropped] = []
    publish = gw.spool.on_drop
    assert publish is not None
    gw.spool.on_drop = lambda d: (reported.append(d), publish(d))  # type: ignore[func-returns-value]
    async with gw:
        await until(lambda: subscriber.count() >= 100)
        broker.stop()
        await until(lambda: gw.spool.stats().dropped >= 300, what="drops while the broker is down")
        await broker.started()
        await until(lambda: gw.forwarders[0].connects >= 2)
        await gw.wait_delivered()
        final = produced(gw)
        await until(
            lambda: (
                subscriber.retained.get("mcptool/test/status", {}).get("spool", {}).get("dropped")
            ),
            what="the published drop count",
        )
        status = subscriber.retained["mcptool/test/status"]
    # every reading that did not arrive is one the gateway reported dropped
    dropped = {(d.device, seq) for d in reported for seq in range(d.seq_first, d.seq_last + 1)}
    missing = {(device, seq) for device, seqs in subscriber.missing(final).items() for seq in seqs}
    assert missing
    assert missing <= dropped
    assert sum(gw.spool.dropped.values()) == len(dropped)
    assert status["spool"]["policy"] == "drop_oldest"
    assert sum(status["spool"]["dropped"].values()) > 0


class GivingUp:
    """A destination that acknowledges every record but gives up on those of one device,
    reporting them through ``on_drop`` as a real one would (the gateway sets it)."""

    name = "picky"

    def __init__(self, refuse: str) -> None:
        self.refuse = refuse
        self.on_drop: object = None

    async def connect(self) -> None:
        pass

    async def send(self, record: Record) -> None:
        if record.device == self.refuse:
            assert callable(self.on_drop)
            first, last = record.seq_first, record.seq_last
            self.on_drop(Dropped(record.device, first, last, "picky: no", "picky", "no"))

    async def watch(self) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        pass


async def test_a_destinations_drops_take_the_spools_drop_path_to_status_and_exit_log(
    devices: ModbusSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    picky = GivingUp("d1")
    jsonl = {"path": str(tmp_path / "out.jsonl")}
    config = parse_config(gateway_config(devices, tmp_path, mqtt_port=None, jsonl=jsonl))
    gw = Gateway(config, transports=[picky])
    assert picky.on_drop == gw.spool.report_drop
    reported: list[Dropped] = []
    publish = gw.spool.on_drop
    assert publish is not None
    gw.spool.on_drop = lambda d: (reported.append(d), publish(d))  # type: ignore[func-returns-value]
    with caplog.at_level(logging.WARNING, logger="mcptool.gateway.gateway"):
        async with gw:
            await until(lambda: gw.spool.sink_dropped("picky").get("d1", 0) >= 50)
            sinks = {s["name"]: s["dropped"] for s in gw.status()["sinks"]}
            assert sinks["jsonl"] == 0 and sinks["picky"] >= 50
            assert gw._summary()["sinks"] == {
                "jsonl": {"dropped": {}},
                "picky": {"dropped": gw.spool.sink_dropped("picky")},
            }
            assert set(gw.spool.sink_dropped("picky")) == {"d1"}
    assert {d.device for d in reported} == {"d1"}
    total = sum(d.count for d in reported)
    assert gw.run_dropped == {("picky", "d1"): total}
    assert gw.spool.sink_dropped("picky") == {"d1": total}
    lines = [r.getMessage() for r in caplog.records if r.name == "mcptool.gateway.gateway"]
    assert lines[-1] == f"readings dropped while running: picky: d1 {total}"
    assert any(line.startswith("picky: no: dropped d1 seq ") for line in lines)


def scrape(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    raise AssertionError(f"no {name}{labels} in /metrics")


def with_junk_label(sim: ModbusSimulator, tmp: Path, hub: Hub, **extra: Any) -> dict[str, Any]:
    """A config whose d0 also polls the "label" of ``junk_label_profile``, with the uplink
    frame at 512 bytes."""
    uplink = {"url": f"mcp://127.0.0.1:{hub.port}", "key": KEY, "max_frame": 512}
    raw = gateway_config(sim, tmp, uplink=uplink, **extra)
    raw["devices"][0]["points"].append(
        {"name": "label", "address": 100, "type": "string", "length": 100}
    )
    return raw


def junk_label_profile() -> DeviceProfile:
    """d0 with 10 floats and a "label" whose registers hold control bytes: 100 of them are
    600 bytes of JSON escapes, a reading that alone is over a 512-byte frame."""
    d0 = float_profile("d0", 10)
    d0.points.append(SimPoint("holding", 100, "string", value="\x01" * 100, length=50))
    return d0


async def test_a_reading_too_big_for_any_uplink_frame_shows_on_metrics_and_in_the_status(
    broker: Broker, subscriber: Subscriber, hub: Hub, tmp_path: Path
) -> None:
    reported: list[Dropped] = []
    final: dict[str, int] = {}

    def dropped() -> set[tuple[str, int]]:
        return {(d.device, seq) for d in reported for seq in range(d.seq_first, d.seq_last + 1)}

    def missing_at_hub() -> set[tuple[str, int]]:
        return {(d, seq) for d, seqs in hub.log.missing(final).items() for seq in seqs}

    def published(device: str) -> int:
        status = subscriber.retained.get("mcptool/test/status", {})
        return int(status.get("sinks", {}).get("uplink", {}).get("dropped", {}).get(device, 0))

    async with ModbusSimulator([junk_label_profile(), float_profile("d1", 10)]) as sim:
        raw = with_junk_label(sim, tmp_path, hub, mqtt_port=broker.port, metrics={"port": 0})
        gw = Gateway(parse_config(raw))
        publish = gw.spool.on_drop
        assert publish is not None
        gw.spool.on_drop = lambda d: (reported.append(d), publish(d))  # type: ignore[func-returns-value]
        async with gw:
            await until(lambda: gw.spool.sink_dropped("uplink").get("d0", 0) >= 5)
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{gw.metrics_port}/metrics")).text
            counted = scrape(
                text,
                "mcptool_gateway_dropped_readings_total",
                device="d0",
                where="uplink",
                reason="over_frame",
            )
            assert counted >= 5
            uplink_status = next(s for s in gw.status()["sinks"] if s["name"] == "uplink")
            assert uplink_status["dropped"] >= counted
            await until(lambda: published("d0") >= counted, what="the retained status count")
            await gw.wait_delivered()
            final.update(produced(gw))
            await until(lambda: not subscriber.missing(final), what="every reading over MQTT")
            await until(lambda: missing_at_hub() <= dropped(), what="the rest at the hub")
    # MQTT has frames big enough: it got every reading, the labels too
    subscriber.check_nothing_lost(final)
    assert subscriber.duplicates == 0
    # the uplink lost exactly the label readings (every 11th of d0), each one reported
    labels = {("d0", seq) for seq in range(11, final["d0"] + 1, 11)}
    assert {d.where for d in reported} == {"uplink"}
    assert missing_at_hub() == labels
    assert dropped() >= labels


async def test_gateway_run_sums_up_the_drops_of_the_run_when_it_stops(
    hub: Hub, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    async with ModbusSimulator([junk_label_profile()]) as sim:
        raw = with_junk_label(sim, tmp_path, hub, mqtt_port=None, jsonl={"path": str(out)})
        config = tmp_path / "gateway.toml"
        config.write_text(toml(raw))
        command = [sys.executable, "-m", "mcptool", "gateway", "run", "--config", str(config)]
        gateway = await asyncio.create_subprocess_exec(
            *command, "--no-status", cwd=ROOT, stderr=asyncio.subprocess.PIPE
        )
        try:
            await until(lambda: hub.log.count("d0") >= 50, timeout=30, what="readings at the hub")
        finally:
            gateway.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(gateway.communicate(), 20)
    assert gateway.returncode == 0
    lines = stderr.decode().splitlines()
    assert any("uplink: a reading of " in line and "dropped d0 seq 11-11" in line for line in lines)
    [summary] = [line for line in lines if "readings dropped while running:" in line]
    assert summary.split("readings dropped while running: ")[1].startswith("uplink: d0 ")
