"""The second way in: an unchanged gateway whose MQTT sink points at NATS's MQTT listener.
Its polls end in FLEET_DATA on the same subjects as the hub path's, each once (a resent
QoS 1 message included), windows close (the last ones by time, once the gateway stops),
and workers find every window once, across the death of the hub that bridged."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import aiomqtt
import pytest
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg

from mcptool.fleet import StreamSettings, ensure_consumer, ensure_streams
from mcptool.fleet.bridge import mqtt_poll
from mcptool.fleet.ingest import connect, retry
from mcptool.fleet.subjects import (
    BRIDGE_BUCKET,
    DATA_STREAM,
    HEADER_DEVICE,
    MQTT_STREAM,
    MQTT_TOPIC,
    data_subject,
    finding_id,
)
from mcptool.fleet.windows import window_index
from simulators.modbus import ModbusSimulator
from simulators.nats import NatsCluster
from simulators.ollama import OllamaSimulator
from tests.fleet.conftest import write_keys
from tests.fleet.processes import Process, start_hub, start_worker
from tests.fleet.stream_reader import findings, messages
from tests.fleet.test_proof import until
from tests.gateway.conftest import float_profile, toml
from tests.gateway.test_gateway import produced_in

ROOT = Path(__file__).resolve().parents[2]
NODE = "plant-1"
# "pump:2" is escaped in subjects (pump%3A2): the bridge must name it as the hubs do
DEVICES = ("boiler", "pump:2")
WINDOW_S = 1.0


def gateway_toml(sim: ModbusSimulator, tmp: Path, mqtt_port: int) -> str:
    """A gateway like any other; only its [mqtt] table points at the fleet."""
    config = {
        "node": NODE,
        "spool": {"path": str(tmp / "spool.db"), "commit_interval": 0.02},
        "mqtt": {
            "port": mqtt_port,
            "protocol": "3.1.1",  # NATS 2.9 speaks no MQTT 5
            "topic": MQTT_TOPIC,
            "keepalive": 5,
            "publish_timeout": 5,
        },
        "devices": [
            {
                "name": name,
                "host": host,
                "port": port,
                "interval": 0.1,
                "points": [{"name": f"p{j}", "address": j * 2, "type": "float32"} for j in (0, 1)],
            }
            for name, (host, port) in zip(DEVICES, sim.addresses, strict=True)
        ],
    }
    return toml(config)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_gateway_over_mqtt_lands_in_the_fleets_stream_once_and_is_analysed(
    mqtt_cluster: NatsCluster, tmp_path: Path
) -> None:
    keys = write_keys(tmp_path / "keys")
    settings = StreamSettings()
    nc = await connect(mqtt_cluster.urls, "mqtt-path")
    js = nc.jetstream(timeout=5)
    await ensure_streams(js, settings)
    await ensure_consumer(js, settings)
    config = tmp_path / "gateway.toml"
    processes: list[Process] = []
    gateway = None
    try:
        async with (
            ModbusSimulator([float_profile(name, 2) for name in DEVICES]) as sim,
            OllamaSimulator(parallel=4, token_delay=0.001) as ollama,
        ):
            config.write_text(gateway_toml(sim, tmp_path, mqtt_cluster.nodes[0].mqtt_port or 0))
            hub_args = ("--window-grace-s", "1")
            hubs = await asyncio.gather(
                *(
                    asyncio.to_thread(
                        start_hub,
                        keys,
                        mqtt_cluster.url,
                        WINDOW_S,
                        tmp_path / f"hub{i}.log",
                        *hub_args,
                    )
                    for i in range(2)
                )
            )
            processes += [hub for hub, _ in hubs]
            processes.append(
                await asyncio.to_thread(
                    start_worker, mqtt_cluster.url, ollama.url, tmp_path / "worker.log"
                )
            )
            log = (tmp_path / "gateway.log").open("w")
            gateway = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "mcptool", "gateway", "run", "--config", str(config)],
                "--no-status",
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=log,
                stderr=log,
            )

            async def stored() -> int:
                return (await retry(lambda: js.stream_info(DATA_STREAM), 30)).state.messages

            await until(lambda: _at_least(stored, 30), 60, "readings bridged")
            # the hub holding the bridge's lease dies; the other takes over
            kv = await js.key_value(BRIDGE_BUCKET)
            holder = (await kv.get("holder")).value or b""
            [dead] = [h for h, _ in hubs if holder.endswith(b" pid %d" % h.process.pid)]
            dead.kill()
            before = await stored()
            await until(lambda: _at_least(stored, before + 60), 90, "readings after failover")
            gateway.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(gateway.wait(), 30) == 0
            gateway = None

            # a QoS 1 message sent again (as after a lost PUBACK) is not stored again
            resent = (await readings_in(js))[:5]
            async with aiomqtt.Client(
                "127.0.0.1",
                mqtt_cluster.nodes[1].mqtt_port or 0,
                protocol=aiomqtt.ProtocolVersion.V311,
                identifier="resender",
            ) as client:
                for message in resent:
                    poll = json.loads(message.data)
                    topic = MQTT_TOPIC.format(node=NODE, device=poll["device"])
                    await client.publish(topic, message.data, qos=1)

            async def drained() -> bool:
                info = await retry(lambda: js.stream_info(MQTT_STREAM), 30)
                return info.state.messages == 0

            await until(drained, 60, "FLEET_MQTT bridged to the end")
            readings = await readings_in(js)
            windows = {
                (poll.device, window_index(poll.ts, WINDOW_S))
                for m in readings
                if (poll := mqtt_poll("fleet.mqtt.x.y", m.data)) is not None
            }
            expected = {finding_id(NODE, device, index) for device, index in windows}

            async def all_found() -> bool:
                return set(await retry(lambda: findings(js), 30)) >= expected

            await until(all_found, 90, f"{len(expected)} findings")
            found = await findings(js)
            mqtt_received = (await js.stream_info(MQTT_STREAM)).state.last_seq
    finally:
        if gateway is not None and gateway.returncode is None:
            gateway.kill()
            await gateway.wait()
        for process in processes:
            process.stop()
        await nc.close()

    final = produced_in(tmp_path / "spool.db")
    assert set(final) == set(DEVICES)
    polls = Counter()
    per_reading: Counter[tuple[str, int]] = Counter()
    for message in readings:
        poll = json.loads(message.data)
        # the hubs' subject for this node and device, escaping included
        assert message.subject == data_subject(NODE, poll["device"])
        polls[(poll["device"], poll["seq"])] += 1
        for reading in poll["readings"]:
            per_reading[(poll["device"], reading["seq"])] += 1
    assert set(polls.values()) == {1}, "a poll stored twice"
    assert sorted(per_reading) == sorted(
        (device, seq) for device, last in final.items() for seq in range(1, last + 1)
    ), "a reading lost"
    assert set(per_reading.values()) == {1}, "a reading stored twice"
    assert mqtt_received >= len(readings) + len(resent)  # the resent ones did arrive
    assert set(found) == expected, "a window not analysed"
    assert set(found.values()) == {1}, "a window with a second finding"
    assert dead.process.returncode == -9


async def readings_in(js: JetStreamContext) -> list[RawStreamMsg]:
    """The readings of FLEET_DATA that came over MQTT (by the bridge's header)."""
    return [m for m in await messages(js, DATA_STREAM) if HEADER_DEVICE in (m.headers or {})]


async def _at_least(count: object, wanted: int) -> bool:
    return await count() >= wanted  # type: ignore[operator]
