"""The MCP uplink against a real hub (LinkServer): every reading arrives, through a hub
restart too, and oversized polls are cut into frames that fit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcptool.gateway import Gateway, parse_config
from mcptool.gateway.sinks.mcp import _BODY_LIMIT, _frames
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
