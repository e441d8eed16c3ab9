"""The MCP uplink against a real hub (LinkServer): every reading arrives, through a hub
restart too; oversized polls are cut into frames that fit, and what cannot fit in any
frame is reported as a drop, never silently lost."""

from __future__ import annotations

import json
import logging
import re
import socket
from pathlib import Path

import pytest

from mcptool.frame import MAX_LENGTH_DEFAULT, MAX_LENGTH_LIMIT
from mcptool.gateway import Gateway, parse_config
from mcptool.gateway.config import UplinkConfig
from mcptool.gateway.sinks.mcp import _BODY_LIMIT, UplinkTransport
from mcptool.gateway.spool import Dropped, Kind, Record
from simulators.modbus import ModbusSimulator
from tests.gateway.conftest import KEY, Hub, gateway_config, until


def uplink_config(devices: ModbusSimulator, tmp: Path, hub: Hub) -> dict[str, object]:
    uplink = {"url": f"mcp://127.0.0.1:{hub.port}", "key": KEY}
    return gateway_config(devices, tmp, mqtt_port=None, uplink=uplink)


async def test_readings_reach_the_hub_and_survive_a_hub_restart(
    devices: ModbusSimulator, hub: Hub, tmp_path: Path
) -> None:
    async with Gateway(parse_config(uplink_config(devices, tmp_path, hub))) as gw:
        await until(lambda: hub.log.count() >= 200, what="first readings at the hub")
        await hub.stop()
        before = gw.produced
        await until(lambda: gw.produced >= before + 300, what="polls while the hub is down")
        await hub.start()
        await until(lambda: hub.sessions >= 2, what="a new session")
        await gw.wait_delivered()
        final = {d.name: gw.spool.last_seq(d.name) for d in gw.config.devices}
        await until(lambda: not hub.log.missing(final), what="every reading at the hub")
    hub.log.check_nothing_lost(final)


async def test_a_message_too_big_for_one_frame_reaches_the_hub_in_frames_that_fit(
    hub: Hub,
) -> None:
    readings = [
        {"device": "d", "point": f"point-{i}", "seq": 1 + i, "ts": 1, "value": i / 7}
        for i in range(400)
    ]
    payload = json.dumps({"node": "n", "device": "d", "seq": 1, "ts": 1, "readings": readings})
    assert len(payload) > _BODY_LIMIT
    transport = UplinkTransport(UplinkConfig(url=f"mcp://127.0.0.1:{hub.port}", key=KEY), "test")
    await transport.connect()
    try:
        await transport.send(Record(1, "d", 1, 400, 0.0, payload.encode()))
    finally:
        await transport.close()
    assert hub.log.messages > 1  # cut into several frames
    assert hub.log.count("d") == 400
    assert not hub.log.missing({"d": 400})
    assert transport.dropped == {}


def poll(seq: int, size: int = 0) -> bytes:
    reading = {"device": "d", "point": "p", "seq": seq, "ts": 1, "value": "x" * size}
    return json.dumps({"node": "test", "device": "d", "seq": seq, "readings": [reading]}).encode()


def finding(size: int) -> bytes:
    return json.dumps({"type": "finding", "device": "d", "summary": "x" * size}).encode()


async def test_an_uncuttable_record_is_reported_once_and_the_uplink_goes_on(hub: Hub) -> None:
    dropped: list[Dropped] = []
    config = UplinkConfig(url=f"mcp://127.0.0.1:{hub.port}", key=KEY)
    transport = UplinkTransport(config, "test", on_drop=dropped.append)
    await transport.connect()
    try:
        await transport.send(Record(1, "d", 1, 1, 0.0, finding(_BODY_LIMIT), Kind.FINDING))
        await transport.send(Record(2, "d", 1, 1, 0.0, poll(1)))
    finally:
        await transport.close()
    [drop] = dropped
    assert (drop.device, drop.seq_first, drop.seq_last) == ("d/analysis", 1, 1)
    assert drop.reason.startswith("uplink: a record of ") and "over one frame" in drop.reason
    assert (drop.where, drop.kind) == ("uplink", "over_frame")
    assert transport.dropped == {"d/analysis": 1}
    assert hub.log.count("d") == 1  # the record after it was delivered
    assert hub.sessions == 1  # no reconnect


async def test_without_a_drop_handler_the_uplink_logs_the_drop_in_one_line(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    config = UplinkConfig(url=f"mcp://127.0.0.1:{hub.port}", key=KEY)
    transport = UplinkTransport(config, "test")
    await transport.connect()
    try:
        with caplog.at_level(logging.WARNING, logger="mcptool.gateway.sinks.mcp"):
            await transport.send(Record(7, "d", 3, 1, 0.0, finding(_BODY_LIMIT), Kind.FINDING))
    finally:
        await transport.close()
    [line] = [r.getMessage() for r in caplog.records if r.name == "mcptool.gateway.sinks.mcp"]
    assert line.startswith("uplink: a record of ") and line.endswith("dropped d/analysis seq 3-3")
    assert transport.dropped == {"d/analysis": 1}


def reading(seq: int, size: int = 0) -> dict[str, object]:
    return {"device": "d", "point": f"p{seq}", "seq": seq, "ts": 1, "value": "x" * size}


def poll_of(readings: list[dict[str, object]]) -> bytes:
    first = readings[0]["seq"]
    return json.dumps({"node": "test", "device": "d", "seq": first, "readings": readings}).encode()


async def send_with_a_small_frame(hub: Hub, record: Record) -> tuple[list[Dropped], int]:
    """Send ``record`` over an uplink whose frames hold 512-byte messages."""
    dropped: list[Dropped] = []
    config = UplinkConfig(url=f"mcp://127.0.0.1:{hub.port}", key=KEY, max_frame=512 + 64)
    transport = UplinkTransport(config, "test", on_drop=dropped.append)
    assert transport.body_limit == 512
    await transport.connect()
    try:
        await transport.send(record)
    finally:
        await transport.close()
    return dropped, hub.log.count("d")


async def test_only_readings_that_alone_are_over_a_frame_are_left_out_of_a_cut_poll(
    hub: Hub,
) -> None:
    # 20 small readings with big ones at seq 5, 12 and 13 (adjacent: one range)
    readings = [reading(seq, size=600 if seq in (5, 12, 13) else 10) for seq in range(1, 21)]
    dropped, arrived = await send_with_a_small_frame(
        hub, Record(1, "d", 1, 20, 0.0, poll_of(readings))
    )
    assert [(d.seq_first, d.seq_last) for d in dropped] == [(5, 5), (12, 13)]
    for drop in dropped:
        assert re.fullmatch(
            r"uplink: a reading of \d+ bytes is over one frame \(512 bytes\)", drop.reason
        )
    assert arrived == 17  # the rest of the poll went


async def test_a_poll_whose_readings_lack_sequence_numbers_is_reported_whole(hub: Hub) -> None:
    readings = [reading(1), {"device": "d", "point": "big", "value": "x" * 600}]
    dropped, arrived = await send_with_a_small_frame(
        hub, Record(1, "d", 1, 2, 0.0, poll_of(readings))
    )
    [drop] = dropped
    assert (drop.seq_first, drop.seq_last) == (1, 2)
    assert drop.reason.endswith("and has no readings to cut it by")
    assert arrived == 0


def test_the_uplink_frame_limit_comes_from_the_config() -> None:
    assert UplinkConfig(url="mcp://h:1", key=KEY).max_frame == MAX_LENGTH_DEFAULT
    assert UplinkConfig(url="mcp://h:1", key=KEY, max_frame=MAX_LENGTH_LIMIT).max_frame > 0
    with pytest.raises(ValueError, match="max_frame"):
        UplinkConfig(url="mcp://h:1", key=KEY, max_frame=MAX_LENGTH_LIMIT + 1)
    with pytest.raises(ValueError, match="max_frame"):
        UplinkConfig(url="mcp://h:1", key=KEY, max_frame=511)


async def test_a_small_frame_limit_sends_the_rest_of_a_poll_and_reports_the_reading_over_it(
    hub: Hub,
) -> None:
    dropped: list[Dropped] = []
    config = UplinkConfig(url=f"mcp://127.0.0.1:{hub.port}", key=KEY, max_frame=512)
    transport = UplinkTransport(config, "test", on_drop=dropped.append)
    readings = [reading(seq, size=600 if seq == 4 else 10) for seq in range(1, 11)]
    await transport.connect()
    try:
        await transport.send(Record(1, "d", 1, 10, 0.0, poll_of(readings)))
    finally:
        await transport.close()
    assert sorted(hub.log.seen["d"]) == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    [drop] = dropped
    assert (drop.device, drop.seq_first, drop.seq_last) == ("d", 4, 4)
    assert (drop.where, drop.kind) == ("uplink", "over_frame")
    assert drop.reason.startswith("uplink: a reading of ")
    assert transport.dropped == {"d": 1}
    assert hub.sessions == 1


async def test_the_uplink_fails_over_to_the_next_hub_of_its_list(
    devices: ModbusSimulator, hub: Hub, tmp_path: Path
) -> None:
    """Hubs sharing a store (`mcptool hub --nats`) are listed; a hub that does not answer
    costs one attempt, then the next one gets the readings (issue 18)."""
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        dead = f"mcp://127.0.0.1:{closed.getsockname()[1]}"
    config = uplink_config(devices, tmp_path, hub)
    config["uplink"]["url"] = [dead, f"mcp://127.0.0.1:{hub.port}"]  # type: ignore[index]
    async with Gateway(parse_config(config)) as gw:
        await until(lambda: hub.log.count() >= 100, what="readings at the second hub")
        [forwarder] = gw.forwarders
        assert forwarder.connects == 1 and dead in forwarder.transport.hint


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ([], "url"),
        (["mcp://127.0.0.1:1", "mcps://127.0.0.1:2"], "same scheme"),
        (["http://127.0.0.1:1"], "mcp://HOST:PORT"),
    ],
)
def test_hub_lists_are_checked(url: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        UplinkConfig(url=url, key=KEY)
