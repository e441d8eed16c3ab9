"""``mcptool simulate mcp`` prints like the other simulators: a line a person reads, or JSON
with ``--json``; "Ctrl-C to stop" and "stopped" on stderr."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SECRET = "0123456789abcdef0123456789abcdef"


def simulate_mcp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcptool", "simulate", "mcp", "--duration", "0.05", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_says_where_it_listens_and_what_it_delivered() -> None:
    result = simulate_mcp("--node", f"node-1={SECRET}")
    assert result.returncode == 0, result.stderr
    first, last = result.stdout.splitlines()
    assert first.startswith("MCP peer listening on mcp://127.0.0.1:")
    assert first.endswith(" (nodes: node-1)")
    assert last == "delivered 0 frames"
    assert result.stderr == "Ctrl-C to stop\n"


def test_a_made_up_secret_is_printed_so_that_a_node_can_use_it() -> None:
    result = simulate_mcp("--node", "node-7")
    assert result.returncode == 0, result.stderr
    made_up = result.stdout.splitlines()[1]
    assert made_up.startswith("made-up secret of node-7: ") and len(made_up.split()[-1]) == 32


@pytest.mark.parametrize("args", [(), ("--node", "node-7")])
def test_json_prints_one_object_a_line(args: tuple[str, ...]) -> None:
    result = simulate_mcp("--json", *args)
    assert result.returncode == 0, result.stderr
    started, stopped = map(json.loads, result.stdout.splitlines())
    assert started["url"].startswith("mcp://127.0.0.1:")
    assert started["nodes"] == [args[-1] if args else "node-1"]
    assert stopped == {"delivered": 0}
