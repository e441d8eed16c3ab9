"""A real 3-node NATS cluster with JetStream for the fleet's tests.

Each test that asks for ``nats_cluster`` gets its own cluster: three ``nats-server``
processes on loopback ephemeral ports, routed to each other, each with its own store
directory under the test's tmp_path, ready (routes up, a JetStream meta leader) before
the test starts, and stopped after it. Streams are created R3 by the code under test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcptool.fleet import FleetWorker
from simulators.nats import NatsCluster
from tests.conftest import require_program

KEYS = {f"node-{i}": f"secret-of-node-{i}-0123456789".encode() for i in range(1, 6)}


def write_keys(path: Path) -> Path:
    path.write_text("".join(f"{node} {key.decode()}\n" for node, key in KEYS.items()))
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    yield from _cluster(tmp_path, mqtt=False)


@pytest.fixture
def mqtt_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """The same cluster with each server's MQTT listener open (gateways publish there)."""
    yield from _cluster(tmp_path, mqtt=True)


def _cluster(tmp_path: Path, *, mqtt: bool) -> Iterator[NatsCluster]:
    require_program("nats-server")
    cluster = NatsCluster(tmp_path / "nats", 3, mqtt=mqtt).start()
    try:
        asyncio.run(cluster.ready())
        yield cluster
    finally:
        cluster.stop()


async def until_analysed(worker: FleetWorker, windows: int) -> None:
    """Run ``worker`` until it has analysed ``windows`` windows, then stop it."""
    stop = asyncio.Event()
    running = asyncio.ensure_future(worker.run(stop))
    while worker.analysed < windows:
        await asyncio.sleep(0.05)
    stop.set()
    await running
