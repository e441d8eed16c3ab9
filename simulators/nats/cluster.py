"""Start, kill and restart the nodes of a ``nats-server`` cluster on loopback.

Each node gets its own client, cluster and HTTP-monitor port (free ephemeral ports,
chosen before start because every node's routes must name every other node), its own
JetStream store directory and its own config file. ``ready()`` waits until the monitor
reports a JetStream meta leader and every node routed to every other, so a test creates
R3 streams only once the cluster can place them. With ``mqtt=True`` each node also
listens for MQTT 3.1.1 clients (NATS's MQTT listener: it needs JetStream and a
server_name, which every node has), as gateways publishing straight to the fleet use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NatsCluster", "NatsNode", "nats_server_binary"]

_CANDIDATES = ("nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")


def nats_server_binary() -> str | None:
    """The ``nats-server`` executable (Debian puts it in /usr/sbin), or None."""
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_ports(count: int) -> list[int]:
    # Bind them all at once so the kernel hands out distinct ports, then let go: the
    # server binds them a moment later (a tiny race a test run can live with).
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class NatsNode:
    name: str
    client_port: int
    cluster_port: int
    monitor_port: int
    store: Path
    config: Path
    log: Path
    mqtt_port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def varz(self, path: str = "varz") -> dict[str, object]:
        url = f"http://127.0.0.1:{self.monitor_port}/{path}"
        with urllib.request.urlopen(url, timeout=1) as answer:
            return json.loads(answer.read())


class NatsCluster:
    """``size`` nodes named n1..nN in cluster ``name``, files under ``directory``."""

    def __init__(
        self, directory: Path, size: int = 3, *, name: str = "mcptool", mqtt: bool = False
    ) -> None:
        binary = nats_server_binary()
        if binary is None:
            raise FileNotFoundError("nats-server is not installed: apt-get install nats-server")
        self.binary = binary
        self.directory = Path(directory)
        self.name = name
        ports = _free_ports(4 * size)
        self.nodes = [
            NatsNode(
                name=f"n{i + 1}",
                client_port=ports[3 * i],
                cluster_port=ports[3 * i + 1],
                monitor_port=ports[3 * i + 2],
                store=self.directory / f"n{i + 1}" / "store",
                config=self.directory / f"n{i + 1}" / "nats.conf",
                log=self.directory / f"n{i + 1}" / "nats.log",
                mqtt_port=ports[3 * size + i] if mqtt else None,
            )
            for i in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """All client URLs, comma-separated: what ``--nats`` takes."""
        return ",".join(self.urls)

    def _write_config(self, node: NatsNode) -> None:
        node.store.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(
            f"nats-route://127.0.0.1:{other.cluster_port}"
            for other in self.nodes
            if other is not node
        )
        node.config.write_text(
            f"""server_name: {node.name}
listen: 127.0.0.1:{node.client_port}
http: 127.0.0.1:{node.monitor_port}
jetstream {{
  store_dir: "{node.store}"
  max_memory_store: 64MB
  max_file_store: 1GB
}}
cluster {{
  name: {self.name}
  listen: 127.0.0.1:{node.cluster_port}
  routes: [{routes}]
}}
""",
            encoding="utf-8",
        )
        if node.mqtt_port is not None:
            with node.config.open("a", encoding="utf-8") as config:
                config.write(f"mqtt {{ listen: 127.0.0.1:{node.mqtt_port} }}\n")

    def start_node(self, node: NatsNode) -> None:
        self._write_config(node)
        log = node.log.open("ab")
        try:
            node.process = subprocess.Popen(
                [self.binary, "-c", str(node.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()

    def start(self) -> NatsCluster:
        for node in self.nodes:
            self.start_node(node)
        return self

    def kill(self, node: NatsNode) -> None:
        """SIGKILL: no goodbye to the routes, the store as a crash leaves it."""
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()
                node.process = None

    def _is_ready(self, nodes: list[NatsNode]) -> bool:
        try:
            for node in nodes:
                routes = node.varz("routez").get("num_routes", 0)
                assert isinstance(routes, int)
                if routes < len(nodes) - 1:
                    return False
                jsz = node.varz("jsz")
                meta = jsz.get("meta_cluster")
                if not isinstance(meta, dict) or not meta.get("leader"):
                    return False
        except OSError:
            return False
        return True

    async def ready(self, timeout: float = 30.0) -> None:
        """Until every running node is routed to the others and JetStream has a leader."""
        deadline = time.monotonic() + timeout
        running = [node for node in self.nodes if node.running]
        while not await asyncio.to_thread(self._is_ready, running):
            for node in running:
                if not node.running:
                    raise RuntimeError(f"nats-server {node.name} exited: see {node.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"NATS cluster not ready within {timeout:g} s")
            await asyncio.sleep(0.1)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


def main() -> None:  # pragma: no cover - manual use: python -m simulators.nats.cluster DIR
    import sys

    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "nats-cluster")
    with NatsCluster(directory) as cluster:
        asyncio.run(cluster.ready())
        print(cluster.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
