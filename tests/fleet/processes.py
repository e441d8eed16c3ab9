"""Hubs and workers of a fleet as processes of their own (``python -m mcptool ...``), so
a test or the benchmark can SIGKILL one as a crash would."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO


class Process:
    """A running ``mcptool`` command whose first output line was its banner."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcptool", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.banner = self.process.stdout.readline()
        # Drain the rest into a file, so a chatty process never blocks on a full pipe.
        self._drain = threading.Thread(target=_copy, args=(self.process.stdout, log), daemon=True)
        self._drain.start()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._drain.join(timeout=5)


def _copy(stream: IO[str], path: Path) -> None:
    with path.open("a", encoding="utf-8") as out:
        for line in stream:
            out.write(line)
            out.flush()


def start_hub(
    keys: Path, nats_url: str, window_s: float, log: Path, *extra: str
) -> tuple[Process, str]:
    hub = Process(
        [
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--keys",
            str(keys),
            "--nats",
            nats_url,
            "--window-s",
            str(window_s),
            "--quiet",
            *extra,
        ],
        log,
    )
    if "hub listening on" not in hub.banner:
        hub.stop()
        raise AssertionError(f"hub did not start: {hub.banner}{log.read_text()}")
    return hub, hub.banner.split()[3]


def start_worker(nats_url: str, ollama_url: str, log: Path, *extra: str) -> Process:
    worker = Process(["worker", "--nats", nats_url, "--ollama", ollama_url, *extra], log)
    if not worker.banner.startswith("worker taking windows"):
        worker.stop()
        raise AssertionError(f"worker did not start: {worker.banner}{log.read_text()}")
    return worker


def start_gateway(config: Path, log: Path) -> Process:
    """``mcptool gateway run`` (its banner, on stderr, names its metrics URL)."""
    gateway = Process(["gateway", "run", "--config", str(config), "--no-status"], log)
    if "polling" not in gateway.banner:
        gateway.stop()
        raise AssertionError(f"gateway did not start: {gateway.banner}{log.read_text()}")
    return gateway
