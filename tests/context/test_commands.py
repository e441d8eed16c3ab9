"""`mcptool context serve` and `mcptool ask` refuse what cannot work in one line, exit 2,
before anything listens or connects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.context.conftest import toml


def mcptool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcptool", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.fixture
def plant_file(tmp_path: Path) -> Path:
    path = tmp_path / "plant.toml"
    data = {
        "node": "n",
        "spool": {"path": str(tmp_path / "s.db")},
        "mqtt": {"port": 1883},
        "devices": [
            {"name": "boiler", "host": "127.0.0.1", "port": 1502,
             "points": [{"name": "t", "address": 0}]},
        ],
    }  # fmt: skip
    path.write_text(toml(data))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--http", "0.0.0.0:8765"], "needs a bearer token"),
        (["--http", "8765"], "give HOST:PORT"),
        (["--http", "127.0.0.1:99999"], "give HOST:PORT"),
        (["--token-file", "/nonexistent/token"], "--token-file /nonexistent/token: cannot read"),
        (["--audit", "/nonexistent/dir/audit.jsonl"], "--audit /nonexistent/dir/audit.jsonl"),
    ],
)
def test_serve_refuses_in_one_line(plant_file: Path, args: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MCPTOOL_CONTEXT_TOKEN"}
    result = mcptool("context", "serve", "--config", str(plant_file), *args, env=env)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_a_writable_point_without_bounds_is_a_config_problem(tmp_path: Path) -> None:
    path = tmp_path / "plant.toml"
    path.write_text(
        'node = "n"\n[jsonl]\npath = "-"\n[[devices]]\nname = "boiler"\nhost = "127.0.0.1"\n'
        '[[devices.points]]\nname = "sp"\naddress = 0\nwritable = true\n'
    )
    result = mcptool("ask", "why?", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"{path}: devices[0].points[0].min: a writable point needs bounds: add min and max\n"
    )
