"""The `mcptool hub`, `mcptool link ping|send` and `mcptool simulate mcp` commands, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.link.conftest import write_keys

SECRET = "correct-horse-battery-staple"


def mcptool(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcptool", *args], capture_output=True, text=True, timeout=timeout
    )


class Hub:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def stop(self) -> str:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        return out


def start_hub(*args: str) -> Hub:
    process = subprocess.Popen(
        [sys.executable, "-m", "mcptool", "hub", "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "hub listening on" not in line:
        process.kill()
        raise AssertionError(f"hub did not start: {line}{process.stderr.read()}")  # type: ignore[union-attr]
    return Hub(process, line.split()[3])


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return write_keys(tmp_path / "keys", f"# test hub\nnode-1 {SECRET}\n")


@pytest.fixture
def hub(keys: Path) -> Iterator[Hub]:
    hub = start_hub("--keys", str(keys))
    yield hub
    if hub.process.poll() is None:
        hub.stop()


def test_link_ping_prints_state_changes_and_round_trip_times(hub: Hub, keys: Path) -> None:
    result = mcptool(
        "link", "ping", hub.url, "--node-id", "node-1", "--key-file", str(keys), "--count", "3"
    )
    assert result.returncode == 0, result.stderr
    assert "state established" in result.stdout
    assert result.stdout.count("pong ") == 3
    assert "3 pongs, rtt min/avg/max" in result.stdout


def test_link_ping_with_a_wrong_key_exits_non_zero_saying_authentication_failed(
    hub: Hub, tmp_path: Path
) -> None:
    wrong = write_keys(tmp_path / "wrong.key", "not-the-right-secret-at-all\n")
    result = mcptool("link", "ping", hub.url, "--node-id", "node-1", "--key-file", str(wrong))
    assert result.returncode == 1
    assert "error: authentication failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_link_send_delivers_text_and_file_frames_and_the_hub_logs_them(
    hub: Hub, keys: Path, tmp_path: Path
) -> None:
    data = tmp_path / "readings.txt"
    data.write_text("t=21.5\nt=21.7\n")
    result = mcptool(
        "link", "send", hub.url, "--node-id", "node-1", "--key-file", str(keys),
        "--data", "hello hub", "--data", f"@{data}", "--lines",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "delivered 3 frames" in result.stdout
    log = hub.stop()
    assert 'seq=1 bytes=9 data="hello hub"' in log
    assert 'seq=3 bytes=6 data="t=21.7"' in log


def test_the_hub_refuses_a_keys_file_readable_by_others(tmp_path: Path) -> None:
    keys = write_keys(tmp_path / "keys", f"node-1 {SECRET}\n", 0o644)
    result = mcptool("hub", "--keys", str(keys), "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert result.stderr == (
        f"error: keys file {keys} is readable by group or others (mode 0644):"
        f" run chmod 600 {keys}\n"
    )


@pytest.mark.parametrize("listen", ["7878", "127.0.0.1:http", "127.0.0.1:70000"])
def test_the_hub_explains_a_bad_listen_address(keys: Path, listen: str) -> None:
    result = mcptool("hub", "--keys", str(keys), "--listen", listen)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --listen {listen!r}")


def test_a_link_url_that_is_not_mcp_is_a_one_line_error(keys: Path) -> None:
    result = mcptool(
        "link", "ping", "http://127.0.0.1:1", "--node-id", "node-1", "--key-file", str(keys)
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: URL http://127.0.0.1:1: must start with mcp:// or mcps://, e.g. mcp://host:port\n"
    )


def test_mcps_links_work_against_a_tls_hub(keys: Path, self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    hub = start_hub("--keys", str(keys), "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert hub.url.startswith("mcps://")
        result = mcptool(
            "link", "ping", hub.url, "--node-id", "node-1", "--key-file", str(keys),
            "--ca", str(cert), "--count", "1",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "pong 1" in result.stdout
    finally:
        hub.stop()


def test_simulate_mcp_runs_a_peer_that_link_send_can_deliver_to(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "mcptool", "simulate", "mcp", "--json",
         "--node", f"node-1={SECRET}"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        key = write_keys(tmp_path / "node.key", f"{SECRET}\n")
        result = mcptool(
            "link", "send", started["url"], "--node-id", "node-1", "--key-file", str(key),
            "--data", "x",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert json.loads(out.splitlines()[-1]) == {"delivered": 1}


def test_the_hubs_handshake_limits_are_options(keys: Path) -> None:
    import socket

    from mcptool.frame import FrameDecoder, Reject, parse_message

    hub = start_hub(
        "--keys", str(keys), "--max-handshakes", "2", "--reserved-handshakes", "1",
        "--max-handshakes-per-address", "1", "--hello-timeout", "5", "--busy-linger", "0.1",
    )  # fmt: skip
    try:
        host, port = hub.url.removeprefix("mcp://").rsplit(":", 1)
        first = socket.create_connection((host, int(port)), timeout=10)
        second = socket.create_connection((host, int(port)), timeout=10)
        # One slot for strangers: the second turns the first away.
        (reject,) = [parse_message(f) for f in FrameDecoder().feed(first.recv(100))]
        assert reject == Reject(3, "hub busy, try later")
        # A known node still gets in: it turns the second away, then names itself.
        result = mcptool(
            "link", "send", hub.url, "--node-id", "node-1", "--key-file", str(keys), "--data", "in"
        )
        assert result.returncode == 0, result.stderr
        first.close()
        second.close()
    finally:
        hub.process.terminate()
        _, log = hub.process.communicate(timeout=10)
    assert "handshake from 127.0.0.1 refused: turned away for a newer connection" in log
    assert log.count("refused") <= 2  # the first at once, the rest summed up


def test_handshake_limits_that_cannot_work_are_one_line_errors(keys: Path) -> None:
    result = mcptool(
        "hub", "--keys", str(keys), "--max-handshakes", "8", "--reserved-handshakes", "8"
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: --reserved-handshakes 8: give fewer than --max-handshakes (8),"
        " or no new connection could ever start a handshake\n"
    )


def test_link_request_sends_any_request_and_prints_the_response_envelope(
    hub: Hub, keys: Path
) -> None:
    base = ["link", "request", hub.url, "--node-id", "node-1", "--key-file", str(keys)]
    echoed = mcptool(*base, "--action", "echo", "--data", '{"x": [1, "two"]}')
    assert echoed.returncode == 0, echoed.stderr
    envelope = json.loads(echoed.stdout)
    assert envelope["code"] == 200 and envelope["data"] == {"x": [1, "two"]}
    assert envelope["traceId"] and envelope["message"] == "OK"
    status = json.loads(mcptool(*base, "--action", "status").stdout)
    assert status["data"] == {"nodes": ["node-1"]}
    unknown = mcptool(*base, "--action", "no-such-action")
    assert unknown.returncode == 1 and json.loads(unknown.stdout)["code"] != 200
    bad = mcptool(*base, "--action", "echo", "--data", "{nope")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --data '{nope': not JSON")
