"""The MCP uplink against a real hub (LinkServer): every reading arrives, through a hub
restart too, and oversized polls are cut into frames that fit."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcptool.gateway import Gateway, parse_config
from mcptool.gateway.config import UplinkConfig
from mcptool.gateway.sinks.mcp import _BODY_LIMIT, UplinkTransport, _frames, _Unsendable
from mcptool.gateway.spool import Dropped, Record
from mcptool.link import LinkServer
from simulators.modbus import ModbusSimulator
from tests.gateway.conftest import ReadingLog, gateway_config, until

KEY = "0123456789abcdef0123456789abcdef"


class Hub:
    """A hub that can be restarted on the same port (its ledger is in memory: lost)."""

    def __init__(self) -> None:
        self.log = ReadingLog()
        self.port = 0
        self.server: LinkServer | None = None
        self.sessions = 0

    def _data(self, node: str, seq: int, body: bytes) -> None:
        self.log.take(json.loads(body))

    def _session(self, node: str, up: bool, reason: str) -> None:
        self.sessions += up

    async def start(self) -> None:
        self.server = LinkServer(
            "127.0.0.1",
            self.port,
            keys={"test": KEY.encode()},
            on_data=self._data,
            on_session=self._session,
        )
        await self.server.start()
        self.port = self.server.address[1]

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(abort=True)
            self.server = None


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    h = Hub()
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


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


def test_a_message_too_big_for_one_frame_is_cut_into_frames_that_fit() -> None:
    readings = [
        {
            "device": "d",
            "point": f"point-{i}",
            "seq": 10 + i,
            "ts": 1,
            "value": i / 7,
            "quality": "good",
        }
        for i in range(400)
    ]
    payload = json.dumps({"node": "n", "device": "d", "seq": 10, "ts": 1, "readings": readings})
    bodies = _frames(payload.encode())
    assert len(bodies) > 1
    assert all(len(body) <= _BODY_LIMIT for body in bodies)
    messages = [json.loads(body) for body in bodies]
    assert [r for m in messages for r in m["readings"]] == readings
    assert [m["seq"] for m in messages] == [m["readings"][0]["seq"] for m in messages]


def poll(seq: int, size: int = 0) -> bytes:
    reading = {"device": "d", "point": "p", "seq": seq, "ts": 1, "value": "x" * size}
    return json.dumps({"node": "test", "device": "d", "seq": seq, "readings": [reading]}).encode()


def finding(size: int) -> bytes:
    return json.dumps({"type": "finding", "device": "d", "summary": "x" * size}).encode()


def test_a_message_over_one_frame_that_cannot_be_cut_is_refused() -> None:
    for payload, why in [
        (finding(_BODY_LIMIT), "has no readings to cut it by"),
        (b"\xff" * (_BODY_LIMIT + 1), "is not JSON"),
        (poll(1, size=_BODY_LIMIT), "one reading alone is"),
    ]:
        with pytest.raises(_Unsendable, match=why):
            _frames(payload)


async def test_an_uncuttable_record_is_reported_once_and_the_uplink_goes_on(hub: Hub) -> None:
    dropped: list[Dropped] = []
    config = UplinkConfig(url=f"mcp://127.0.0.1:{hub.port}", key=KEY)
    transport = UplinkTransport(config, "test", on_drop=dropped.append)
    await transport.connect()
    try:
        await transport.send(Record(1, "d/analysis", 1, 1, 0.0, finding(_BODY_LIMIT)))
        await transport.send(Record(2, "d", 1, 1, 0.0, poll(1)))
    finally:
        await transport.close()
    [drop] = dropped
    assert (drop.device, drop.seq_first, drop.seq_last) == ("d/analysis", 1, 1)
    assert drop.reason.startswith("uplink: a record of ") and "over one frame" in drop.reason
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
            await transport.send(Record(7, "d/analysis", 3, 1, 0.0, finding(_BODY_LIMIT)))
    finally:
        await transport.close()
    [line] = [r.getMessage() for r in caplog.records if r.name == "mcptool.gateway.sinks.mcp"]
    assert line.startswith("uplink: a record of ") and line.endswith("dropped d/analysis seq 3-3")
    assert transport.dropped == {"d/analysis": 1}
