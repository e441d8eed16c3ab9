"""``mcptool hub --nats`` and ``mcptool worker``: user errors are one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcptool.link import LinkClient
from simulators.nats import NatsCluster
from tests.fleet.conftest import KEYS, write_keys
from tests.fleet.processes import start_hub
from tests.fleet.stream_reader import poll


def mcptool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcptool", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:4222", "use nats://HOST:PORT"),
        ("nats://127.0.0.1", "name a host and a port"),
        ("nats://127.0.0.1:99999", "name a host and a port"),
        (",", "give at least one URL"),
    ],
)
def test_a_bad_nats_url_is_one_line_naming_it(tmp_path: Path, url: str, says: str) -> None:
    for command in (
        ["hub", "--keys", str(write_keys(tmp_path / "keys")), "--nats", url],
        ["worker", "--nats", url, "--ollama", "http://127.0.0.1:11434"],
    ):
        result = mcptool(*command)
        assert result.returncode == 2, result.stderr
        assert says in result.stderr and "--nats" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_nats_server_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    port = _closed_port()
    for command in (
        ["hub", "--keys", str(write_keys(tmp_path / "keys")), "--nats", f"nats://127.0.0.1:{port}"],
        ["worker", "--nats", f"nats://127.0.0.1:{port}", "--ollama", "http://127.0.0.1:1"],
    ):
        result = mcptool(*command)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"error: --nats nats://127.0.0.1:{port}: cannot use")
        assert "Traceback" not in result.stderr


def test_journal_and_nats_together_are_refused(tmp_path: Path) -> None:
    result = mcptool(
        "hub", "--keys", str(write_keys(tmp_path / "keys")), "--journal", str(tmp_path / "j"),
        "--nats", "nats://127.0.0.1:4222",
    )  # fmt: skip
    assert result.returncode == 2
    assert "drop --journal" in result.stderr


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_metrics_need_an_address_and_at_the_hub_nats(tmp_path: Path) -> None:
    keys = str(write_keys(tmp_path / "keys"))
    result = mcptool("hub", "--keys", keys, "--metrics", "127.0.0.1:0")
    assert result.returncode == 2 and "give --nats too" in result.stderr
    result = mcptool(
        "worker", "--nats", "nats://127.0.0.1:4222", "--ollama", "http://127.0.0.1:1",
        "--metrics", "nowhere",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: --metrics 'nowhere': use HOST:PORT")


def test_a_negative_window_grace_is_one_line_naming_it(tmp_path: Path) -> None:
    result = mcptool(
        "hub", "--keys", str(write_keys(tmp_path / "keys")), "--nats", "nats://127.0.0.1:4222",
        "--window-grace-s", "-1",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--window-grace-s" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_hubs_default_grace_is_the_trackers() -> None:
    from mcptool.fleet.windows import DEFAULT_GRACE_S

    text = " ".join(mcptool("hub", "--help").stdout.split())
    start = text.index("--window-grace-s")
    option = text[start : text.index("]", start)]  # its help, up to its [default: ...]
    assert f"[default: {DEFAULT_GRACE_S};" in option


@pytest.mark.parametrize("verbose", [True, False])
async def test_hub_verbose_logs_mcptools_own_info_lines(
    nats_cluster: NatsCluster, tmp_path: Path, verbose: bool
) -> None:
    keys = write_keys(tmp_path / "keys")
    log = tmp_path / "hub.log"
    hub, url = start_hub(keys, nats_cluster.url, 1.0, log, *(["-v"] if verbose else []))
    try:
        link = LinkClient(url, "node-1", KEYS["node-1"])
        await link.start(10)
        await link.send(poll("boiler", 1_700_000_000_000, 20.0))
        await link.close()
    finally:
        hub.stop()  # the log is complete once the process has ended
    up = [line for line in log.read_text().splitlines() if "node node-1 up (session" in line]
    assert len(up) == (1 if verbose else 0), log.read_text()
