"""The hub's analysis, wired by the composition layer: relayed polls analysed at the hub,
findings published through the one MQTT publisher (the gateway's MQTT sink) to a real
Mosquitto, and a real gateway's uplink feeding it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from mcptool.analysis import ThresholdRule
from mcptool.edge import hub_analysis
from mcptool.edge.hub import MqttFindings, SinkUnavailable, mqtt_settings
from mcptool.errors import UsageError
from mcptool.gateway import Gateway, parse_config
from mcptool.gateway.sinks.mqtt import MqttTransport
from mcptool.link import LinkServer
from simulators.modbus import DeviceProfile, ModbusSimulator
from simulators.modbus import Point as SimPoint
from simulators.ollama import OllamaSimulator
from tests.analysis.conftest import Collector, Mosquitto
from tests.analysis.test_hub import CONFIG, KEY, relay, tank_data


async def test_hub_findings_reach_mqtt_on_the_analysis_topic(
    ollama: OllamaSimulator, mosquitto: Mosquitto
) -> None:
    received: list[tuple[str, dict[str, Any]]] = []
    async with asyncio.timeout(30), aiomqtt.Client("127.0.0.1", mosquitto.port) as subscriber:
        await subscriber.subscribe("mcptool/#", qos=1)
        analysis = hub_analysis(
            ollama.url, f"mqtt://127.0.0.1:{mosquitto.port}", config=CONFIG, model=CONFIG.model
        )
        [publisher] = [c for c in analysis._closers if isinstance(c, MqttFindings)]
        assert isinstance(publisher.mqtt, MqttTransport)  # the gateway's own MQTT sink
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
    assert {r["kind"] for _, r in received} == {"finding"}
    assert received[-1][1]["source"] == "model"


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
    analysis = hub_analysis(ollama.url, None, config=config, model=config.model, sinks=[sink])
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


async def test_a_finding_the_broker_cannot_take_raises_so_the_pipeline_keeps_it(
    mosquitto: Mosquitto,
) -> None:
    """The broker gone: the sink says so (the pipeline keeps a model finding in its
    backlog and tries again) and drops the dead connection, to open a new one next time."""
    port = mosquitto.port
    findings = MqttFindings(mqtt_settings(f"mqtt://127.0.0.1:{port}"), node="hub")
    record = {"type": "finding", "node": "plant-1", "device": "tank", "summary": "s"}
    await findings(record)  # connects on first use
    assert findings.mqtt.connected
    mosquitto.stop()
    with pytest.raises(SinkUnavailable, match=f"MQTT broker 127.0.0.1:{port}"):
        async with asyncio.timeout(30):
            while True:  # the first publish may still be taken by the closing socket
                await findings(record)
    assert not findings.mqtt.connected
    await findings.aclose()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1", "use mqtt://host:port"),
        ("mqtt://127.0.0.1:99999", "the port is not a number from 1 to 65535"),
    ],
)
def test_a_bad_mqtt_url_is_one_line(url: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        mqtt_settings(url)


def test_mqtts_means_tls_and_the_credentials_come_from_the_url() -> None:
    settings = mqtt_settings("mqtts://user:pw@broker.local")
    assert (settings.host, settings.port, settings.tls) == ("broker.local", 8883, True)
    assert (settings.username, settings.password) == ("user", "pw")
