"""The fleet's Grafana dashboard against a real Prometheus (Debian ``prometheus``) that
scrapes a running ``mcptool gateway run`` (polling a simulated device, with an uplink to
the hub and its own analysis over two model routes), ``mcptool hub --nats`` (bridging
polls sent to NATS's MQTT listener) and ``mcptool worker``: every PromQL expression of
every panel must return data."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from pathlib import Path

import aiomqtt
import httpx
import pytest

from mcptool.fleet.dashboard import dashboard, expressions
from mcptool.link import LinkClient
from simulators.modbus import DeviceProfile, ModbusSimulator
from simulators.modbus import Point as SimPoint
from simulators.nats import NatsCluster
from simulators.ollama import OllamaSimulator
from tests.conftest import require_program
from tests.fleet.conftest import KEYS, write_keys
from tests.fleet.processes import Process, start_gateway, start_hub, start_worker
from tests.fleet.stream_reader import poll

BASE_MS = 1_700_000_000_000


def test_every_panel_queries_prometheus_through_the_datasource_variable() -> None:
    board = dashboard()
    assert board["uid"] == "mcptool-fleet"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gateway_config(path: Path, hub_url: str, boiler: tuple[str, int], ollama: str) -> Path:
    """A gateway polling a boiler whose label is over the uplink's 512-byte frame (an
    uplink drop every poll) and a meter nobody answers for (poll errors), every 200 ms;
    its analysis has a route to the Ollama simulator and one to a box that is down."""
    host, port = boiler
    label = '{name = "label", address = 100, type = "string", length = 100}'
    spool, key = path.parent / "spool.db", KEYS["node-2"].decode()
    path.write_text(
        f"""node = "node-2"
[spool]
path = "{spool}"
[metrics]
port = 0
[uplink]
url = "{hub_url}"
key = "{key}"
max_frame = 512
[[devices]]
name = "boiler"
host = "{host}"
port = {port}
interval = 0.2
points = [{{name = "temperature", address = 0, type = "float32"}}, {label}]
[[devices]]
name = "meter"
host = "127.0.0.1"
port = {_free_port()}
interval = 0.2
backoff_initial = 0.2
backoff_max = 1.0
points = [{{name = "power", address = 0, type = "float32"}}]
[analysis]
window_s = 2
route_check_s = 1
[[analysis.routes]]
model = "llama3.2"
ollama = "{ollama}"
[[analysis.routes]]
model = "qwen2.5:14b"
ollama = "http://127.0.0.1:{_free_port()}"
fallback = true
first_for = "critical"
"""
    )
    return path


def _boiler() -> DeviceProfile:
    # 100 control characters: 600 bytes of JSON escapes, more than a 512-byte frame
    return DeviceProfile(
        name="boiler",
        points=[
            SimPoint("holding", 0, "float32", value={"kind": "counter", "rate": 10}),
            SimPoint("holding", 100, "string", value="\x01" * 100, length=50),
        ],
    )


def _metrics_target(banner: str) -> str:
    url = banner.split("metrics on ")[1].strip().rstrip(")")
    return url.removeprefix("http://").removesuffix("/metrics")


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_every_dashboard_expression_has_data_in_a_real_prometheus(
    mqtt_cluster: NatsCluster, tmp_path: Path
) -> None:
    nats_cluster = mqtt_cluster
    prometheus = require_program("prometheus")
    keys = write_keys(tmp_path / "keys")
    processes: list[Process] = []
    async with OllamaSimulator() as ollama, ModbusSimulator([_boiler()]) as devices:
        try:
            hub, hub_url = await asyncio.to_thread(
                start_hub, keys, nats_cluster.url, 1.0, tmp_path / "hub.log", "--metrics",
                "127.0.0.1:0",
            )  # fmt: skip
            processes.append(hub)
            worker = await asyncio.to_thread(
                start_worker, nats_cluster.url, ollama.url, tmp_path / "worker.log",
                "--metrics", "127.0.0.1:0",
            )  # fmt: skip
            processes.append(worker)
            config = _gateway_config(
                tmp_path / "gateway.toml", hub_url, devices.addresses[0], ollama.url
            )
            gateway = await asyncio.to_thread(start_gateway, config, tmp_path / "gateway.log")
            processes.append(gateway)
            port = _free_port()
            config = tmp_path / "prometheus.yml"
            config.write_text(
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                "scrape_configs:\n"
                f"  - job_name: mcptool-gateway\n"
                f"    static_configs: [{{targets: ['{_metrics_target(gateway.banner)}']}}]\n"
                f"  - job_name: mcptool-hub\n"
                f"    static_configs: [{{targets: ['{_metrics_target(hub.banner)}']}}]\n"
                f"  - job_name: mcptool-worker\n"
                f"    static_configs: [{{targets: ['{_metrics_target(worker.banner)}']}}]\n"
            )
            server = subprocess.Popen(
                [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"),
            )  # fmt: skip
            try:
                mqtt_port = nats_cluster.nodes[0].mqtt_port or 0
                missing = await _until_every_expression_has_data(port, hub_url, mqtt_port)
            finally:
                server.terminate()
                server.wait(timeout=30)
        finally:
            for process in processes:
                process.stop()
    assert missing == [], f"no data for: {missing}"


async def _until_every_expression_has_data(port: int, hub_url: str, mqtt_port: int) -> list[str]:
    link = LinkClient(hub_url, "node-1", KEYS["node-1"])
    await link.start(10)
    sent = 0

    async def traffic() -> None:
        nonlocal sent
        # node-3 publishes to NATS's MQTT listener, as a gateway on the MQTT path does
        async with aiomqtt.Client(
            "127.0.0.1", mqtt_port, identifier="node-3", protocol=aiomqtt.ProtocolVersion.V311
        ) as mqtt:
            while True:  # a poll every 50 ms, a simulated second apart: a window per 250 ms
                message = poll("boiler", BASE_MS + sent * 200, 20 + sent % 3)
                await link.send(message)
                # the bridge takes node, device and seq from the poll itself
                poll_3 = {**json.loads(message), "node": "node-3", "seq": sent + 1}
                await mqtt.publish("fleet/mqtt/node-3/boiler", json.dumps(poll_3), qos=1)
                sent += 1
                await asyncio.sleep(0.05)

    feeding = asyncio.ensure_future(traffic())
    pending = set(expressions())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 120
            while pending and loop.time() < deadline:
                for title, expr in sorted(pending):
                    try:
                        reply = await client.get("/api/v1/query", params={"query": expr})
                    except httpx.HTTPError:
                        break  # not listening yet
                    if reply.status_code == 503:
                        break  # listening, not ready (reading its store) yet
                    answer = reply.json()
                    assert answer["status"] == "success", (title, expr, answer)
                    if answer["data"]["result"]:
                        pending.discard((title, expr))
                await asyncio.sleep(0.5)
        finally:
            feeding.cancel()
            await asyncio.gather(feeding, return_exceptions=True)
            await link.close()
    assert sent > 0
    return [f"{title}: {expr}" for title, expr in sorted(pending)]


def test_the_dashboard_is_valid_json_in_the_package() -> None:
    from importlib import resources

    text = resources.files("mcptool.fleet.grafana").joinpath("fleet.json").read_text("utf-8")
    assert json.loads(text) == dashboard()
