"""The MQTT destination's security settings against a real Mosquitto: credentials (the
wrong password is refused, the sink says why and keeps retrying) and TLS (a broker
certificate that is not trusted is refused; with its CA file the gateway delivers)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiomqtt

from mcptool.gateway import Gateway, parse_config
from mcptool.gateway.config import MqttConfig
from mcptool.gateway.sinks.forwarder import SinkState
from mcptool.gateway.sinks.mqtt import MqttTransport
from mcptool.gateway.spool import Record
from simulators.modbus import ModbusSimulator
from tests.conftest import require_program
from tests.gateway.conftest import Broker, gateway_config, until


async def test_credentials_are_required_and_used(devices: ModbusSimulator, tmp_path: Path) -> None:
    passwd = require_program("mosquitto_passwd", "mosquitto")
    password_file = tmp_path / "passwords"
    subprocess.run([passwd, "-b", "-c", str(password_file), "gateway", "s3cret"], check=True)
    password_file.chmod(0o600)
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = Broker(require_program("mosquitto"), workdir, password_file)
    await broker.started()
    try:
        raw = gateway_config(devices, tmp_path, mqtt_port=broker.port)
        raw["mqtt"].update(username="gateway", password="wrong")
        async with Gateway(parse_config(raw)) as gw:
            sink = gw.forwarders[0]
            await until(lambda: sink.last_error != "", what="a refused connect")
            assert sink.state is not SinkState.CONNECTED
            assert "authori" in sink.last_error.lower()
        raw["spool"]["path"] = str(tmp_path / "second.db")
        raw["mqtt"]["password"] = "s3cret"
        async with Gateway(parse_config(raw)) as gw:
            await until(lambda: gw.forwarders[0].acked >= 10, what="delivery with credentials")
    finally:
        broker.stop()


async def test_tls_to_the_broker_verifies_its_certificate(
    devices: ModbusSimulator, tmp_path: Path
) -> None:
    openssl = require_program("openssl")
    cert, key = tmp_path / "broker.pem", tmp_path / "broker.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = Broker(
        require_program("mosquitto"), workdir, listener_options=f"certfile {cert}\nkeyfile {key}\n"
    )
    await broker.started()
    try:
        raw = gateway_config(devices, tmp_path, mqtt_port=broker.port)
        raw["mqtt"].update(tls=True)  # the system CAs do not know this certificate
        async with Gateway(parse_config(raw)) as gw:
            await until(lambda: "certificate" in gw.forwarders[0].last_error.lower())
            assert gw.forwarders[0].acked == 0
        raw["mqtt"].update(ca_file=str(cert))
        raw["spool"]["path"] = str(tmp_path / "second.db")
        async with Gateway(parse_config(raw)) as gw:
            await until(lambda: gw.forwarders[0].acked >= 10, what="delivery over TLS")
    finally:
        broker.stop()


async def test_analysis_records_go_to_the_analysis_topic_of_their_device(
    broker: Broker,
) -> None:
    """The spool's pseudo-device ``boiler/analysis`` is published on
    ``mcptool/<node>/boiler/analysis``, not under the telemetry topic."""
    transport = MqttTransport(MqttConfig(host="127.0.0.1", port=broker.port), "plant-1")
    received: dict[str, bytes] = {}
    async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
        await subscriber.subscribe("mcptool/+/+/+", qos=1)
        await transport.connect()
        try:
            await transport.send(Record(1, "boiler", 1, 2, 0.0, b'{"readings":[]}'))
            await transport.send(Record(2, "boiler/analysis", 1, 1, 0.0, b'{"type":"finding"}'))
        finally:
            await transport.stop()
        async with asyncio.timeout(10):
            async for message in subscriber.messages:
                if not str(message.topic).endswith("/status"):
                    received[str(message.topic)] = message.payload  # type: ignore[assignment]
                if len(received) == 2:
                    break
    assert received == {
        "mcptool/plant-1/boiler/telemetry": b'{"readings":[]}',
        "mcptool/plant-1/boiler/analysis": b'{"type":"finding"}',
    }


def test_the_analysis_topic_template_is_configurable() -> None:
    config = MqttConfig(analysis_topic="site/{node}/findings/{device}")
    transport = MqttTransport(config, "plant-1")
    assert transport.topic("boiler/analysis") == "site/plant-1/findings/boiler"
    assert transport.topic("boiler") == "mcptool/plant-1/boiler/telemetry"
