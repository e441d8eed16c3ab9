"""Analysis at the hub: polls relayed over a real MCP link (LinkClient -> LinkServer) are
analysed there, and the findings reach a real MQTT broker on .../<node>/<device>/analysis."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import aiomqtt

from mcptool.analysis import AnalysisConfig, ThresholdRule
from mcptool.analysis.hub import HubAnalysis
from mcptool.gateway import Gateway, parse_config
from mcptool.link import LinkClient, LinkServer
from simulators.modbus import DeviceProfile, ModbusSimulator
from simulators.modbus import Point as SimPoint
from simulators.ollama import OllamaSimulator
from tests.analysis.conftest import T0, Collector, Mosquitto, fast_model

KEY = b"a shared secret of the plant-1 gateway"


def poll(device: str, t: float, level: float) -> bytes:
    """A poll message as the gateway spools and relays it."""
    readings = [
        {
            "device": device,
            "point": "level",
            "seq": 1,
            "ts": round(t * 1000),
            "value": level,
            "quality": "good",
            "unit": "cm",
        },
        {
            "device": device,
            "point": "valve",
            "seq": 2,
            "ts": round(t * 1000),
            "value": True,
            "quality": "good",
        },
    ]
    message = {
        "node": "plant-1",
        "device": device,
        "seq": 1,
        "ts": round(t * 1000),
        "readings": readings,
    }
    return json.dumps(message).encode()


CONFIG = AnalysisConfig(
    window_s=10.0,
    zscore=None,
    thresholds=(ThresholdRule("level", above=80.0),),
    offline_after_s=None,
    min_call_interval_s=0.0,
)


async def relay(analysis: HubAnalysis, bodies: list[bytes]) -> None:
    """Send ``bodies`` from a gateway node over a real link to a hub that analyses them."""
    server = LinkServer(keys={"plant-1": KEY}, on_data=analysis.on_data)
    await server.start()
    try:
        async with LinkClient(server.url, "plant-1", KEY) as link:
            for body in bodies:
                await link.send(body)
    finally:
        await server.stop()


def tank_data() -> list[bytes]:
    """Two windows of a tank; the second one overflows past 80 cm."""
    return [poll("tank", T0 + i, 50.0 if i < 10 else 90.0) for i in range(20)] + [
        poll("tank", T0 + 20, 50.0)  # opens the third window, closing the second
    ]


async def test_relayed_polls_are_analysed_at_the_hub(ollama: OllamaSimulator) -> None:
    sink = Collector()
    model = fast_model(ollama.url, CONFIG)
    analysis = HubAnalysis(CONFIG, model=model, sinks=[sink], closers=[model])
    async with analysis:
        await relay(analysis, tank_data())
        [finding] = await sink.wait_for("finding")
        await analysis.pipeline.wait_idle()
    assert analysis.polls == 21
    assert finding["node"] == "plant-1" and finding["device"] == "tank"
    assert finding["source"] == "model" and finding["window"]["start"] == T0 + 10
    assert finding["statistics"]["level"]["unit"] == "cm"  # units came with the readings
    [trigger] = sink.of("trigger")
    assert trigger["rule"] == "threshold" and trigger["node"] == "plant-1"


async def test_hub_findings_reach_mqtt_on_the_analysis_topic(
    ollama: OllamaSimulator, mosquitto: Mosquitto
) -> None:
    received: list[tuple[str, dict[str, Any]]] = []
    async with asyncio.timeout(30), aiomqtt.Client("127.0.0.1", mosquitto.port) as subscriber:
        await subscriber.subscribe("mcptool/#", qos=1)
        analysis = HubAnalysis.from_urls(
            ollama.url, f"mqtt://127.0.0.1:{mosquitto.port}", config=CONFIG
        )
        async with analysis:
            await relay(analysis, tank_data())
            async with asyncio.timeout(15):
                async for message in subscriber.messages:
                    record = json.loads(message.payload)  # type: ignore[arg-type]
                    received.append((str(message.topic), record))
                    if record["type"] == "finding":
                        break
    topics = {topic for topic, _ in received}
    assert topics == {"mcptool/plant-1/tank/analysis"}
    assert [r["type"] for _, r in received] == ["trigger", "finding"]
    assert received[-1][1]["source"] == "model"


async def test_frames_that_are_not_polls_are_skipped_and_the_rest_analysed() -> None:
    sink = Collector()
    analysis = HubAnalysis(CONFIG, model=None, sinks=[sink])
    async with analysis:
        for body in (
            b"\xff\x00 not json",
            b"[1, 2]",
            b'{"device": "tank", "ts": "soon", "readings": []}',
            b'{"type": "finding", "device": "tank"}',
        ):
            analysis.on_data("plant-1", 1, body)
        for body in tank_data():
            analysis.on_data("plant-1", 2, body)
        [finding] = await sink.wait_for("finding")
    assert analysis.frames == 25 and analysis.polls == 21
    assert finding["source"] == "statistics" and finding["device"] == "tank"


async def test_a_gateways_uplink_feeds_the_hub_analysis(
    tmp_path: Path, ollama: OllamaSimulator
) -> None:
    """The whole relay: a real gateway polls a simulated tank and sends every poll over
    its MCP uplink; the hub analyses them with the model next to it."""
    level = SimPoint("holding", 0, "float32", value={"kind": "counter", "rate": 10}, name="lv")
    sink = Collector()
    config = dataclasses.replace(
        CONFIG,
        window_s=0.5,
        cooldown_s=3600.0,
        thresholds=(ThresholdRule("level", above=5.0),),  # the counter passes 5 in 0.5 s
    )
    analysis = HubAnalysis.from_urls(ollama.url, None, config=config, sinks=[sink])
    server = LinkServer(keys={"plant-1": KEY}, on_data=analysis.on_data)
    async with analysis, ModbusSimulator([DeviceProfile(name="tank", points=[level])]) as sim:
        await server.start()
        host, port = sim.address
        gateway = parse_config(
            {
                "node": "plant-1",
                "spool": {"path": str(tmp_path / "spool.db"), "commit_interval": 0.02},
                "uplink": {"url": server.url, "key": KEY.decode()},
                "devices": [
                    {
                        "name": "tank",
                        "host": host,
                        "port": port,
                        "interval": 0.05,
                        "points": [
                            {"name": "level", "address": 0, "type": "float32", "unit": "cm"}
                        ],
                    }
                ],
            }
        )
        try:
            async with Gateway(gateway):
                [finding] = await sink.wait_for("finding")
        finally:
            await server.stop()
    assert finding["node"] == "plant-1" and finding["device"] == "tank"
    assert finding["source"] == "model" and finding["statistics"]["level"]["unit"] == "cm"
    assert analysis.polls >= 10
