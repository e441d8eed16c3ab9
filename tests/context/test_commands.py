"""`mcptool context serve` and `mcptool ask` refuse what cannot work in one line, exit 2,
before anything listens or connects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.context.conftest import toml
from tests.serving.test_model_serve import require_local_model


def mcptool(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcptool", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
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


@pytest.mark.parametrize("engine", ["simulator", "embedded"])
def test_ask_with_a_model_of_its_own_takes_no_ollama_url(plant_file: Path, engine: str) -> None:
    result = mcptool(
        "ask", "why?", "--config", str(plant_file), "--engine", engine,
        "--ollama", "http://127.0.0.1:11434",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"error: --ollama names a real Ollama: leave it out with --engine {engine}\n"
    )


def test_ask_with_the_simulator_needs_no_model_and_says_its_answer_is_simulated(
    plant_file: Path,
) -> None:
    # nothing listens at the boiler's port: the tool error goes to the "model", and the
    # answer quotes it; no Ollama is asked
    result = mcptool("ask", "what does the boiler read now?", "--config", str(plant_file),
                     "--engine", "simulator")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "tool read_values" in result.stderr and "SIMULATED answer" in result.stderr
    assert "read_values returned: error:" in result.stdout and "boiler gave no" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)  # a load and a round of ~1,500 prompt tokens on two shared cores
def test_ask_with_the_embedded_model_runs_its_calls_through_the_servers_checks(
    plant_file: Path,
) -> None:
    # the packaged 0.5B model calls read_values for this question (docs/CONTEXT.md has
    # how well); whatever it asks, each call is run and checked by the context server
    require_local_model()
    question = "What is the boiler's water temperature now?"
    result = mcptool("ask", question, "--config", str(plant_file), "--engine", "embedded",
                     "--max-steps", "1", "--json", timeout=280)  # fmt: skip
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    answer = json.loads(result.stdout)
    assert answer["simulated"] is False and answer["steps"] == 1
    assert answer["calls"], "the model asked for no tool"
    for call in answer["calls"]:
        if call["error"]:
            assert call["result"].startswith("error: ")
        else:
            json.loads(call["result"])
        if call["name"] == "read_values":  # nothing listens at the boiler's port
            assert call["error"]
    assert (result.returncode == 0) == bool(answer["answer"])
    assert answer["answer"] or answer["stopped"]


def test_an_answer_without_calls_is_said_to_hold_nothing_from_the_plant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mcptool.commands.context import show_answer
    from mcptool.context.agent import Answer

    show_answer(Answer("The boiler's internal heat generation.", steps=1), as_json=False,
                simulated=False)  # fmt: skip
    out, err = capsys.readouterr()
    assert out == "The boiler's internal heat generation.\n"
    assert err == "the model called no tool: nothing in this answer was read from the plant\n"
