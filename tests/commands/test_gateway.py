"""``mcptool gateway``: check reports every problem with its path, one line each; run
refuses a bad config the same way. (Running it is proven in tests/gateway/.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def mcptool(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcptool", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_check_prints_one_line_per_problem_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        """
node = "edge"
[jsonl]
[[devices]]
name = "a"
host = "127.0.0.1"
intervall = 1
  [[devices.points]]
  name = "ok"
  address = 0
[[devices]]
name = "b"
host = "127.0.0.1"
template = "meter"
[[devices]]
name = "c"
host = "127.0.0.1"
  [[devices.points]]
  name = "x"
  address = 0
  [[devices.points]]
  name = "y"
  address = 1
  type = "flaot32"
"""
    )
    result = mcptool("gateway", "check", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert f'{path}: devices[2].points[1].type: unknown type "flaot32"' in lines[0] + "".join(
        line for line in lines if "flaot32" in line
    )
    assert any(line.startswith(f"{path}: devices[0].intervall: unknown setting") for line in lines)
    assert "Traceback" not in result.stderr


def test_check_accepts_the_example_configs() -> None:
    for name in ("plant.toml", "many-meters.toml"):
        result = mcptool("gateway", "check", "--config", str(ROOT / "fixtures" / "gateway" / name))
        assert result.returncode == 0, result.stderr
        assert "ok" in result.stdout


def test_run_with_a_missing_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = mcptool("gateway", "run", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "file not found" in result.stderr
    assert "Traceback" not in result.stderr
