"""``mcptool simulate ollama --script FILE``: the official ``ollama`` client gets the
script's known answers from the command-line simulator, and a wrong script stops it in one
line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from mcptool.analysis.analyzer import PointInfo
from mcptool.analysis.findings import finding_schema, parse_answer
from mcptool.analysis.prompting import Prompts
from mcptool.analysis.stats import PointStats, WindowStats
from mcptool.analysis.triggers import TriggerEvent

SCRIPT = """\
[[rule]]
contains = "pump 3"
answer = "Pump 3 runs at 1450 rpm."

[[rule]]
endpoint = "chat"
device = "boiler"
trigger = "threshold"
triggers = true

[[rule]]
regex = "^break"
status = 503
message = "scripted: busy"
"""


def simulate(script: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mcptool", "simulate", "ollama", "--port", "0", "--json",
         "--script", str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    script = tmp_path / "answers.toml"
    script.write_text(SCRIPT, encoding="utf-8")
    process = simulate(script, "--duration", "120")
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())["url"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def window_prompt() -> tuple[str, dict[str, object]]:
    """A real analysis prompt, from the project's own prompt code, and its schema."""
    stats = {
        "supply_temperature": PointStats("supply_temperature", 10, 88.0, 93.22, 90.1, 1.2,
                                         0.01, 93.22, 0, unit="°C"),
        "pressure": PointStats("pressure", 10, 1.5, 1.6, 1.55, 0.02, 0.0, 1.55, 0, unit="bar"),
    }  # fmt: skip
    window = WindowStats("boiler", 1_700_000_000.0, 1_700_000_004.0, stats, readings=20)
    events = [
        TriggerEvent("threshold", "boiler", ("supply_temperature",),
                     "supply_temperature reached 93.22 °C, above 85 °C", severity="critical"),
    ]  # fmt: skip
    info = {"supply_temperature": PointInfo("supply_temperature", "°C"),
            "pressure": PointInfo("pressure", "bar")}  # fmt: skip
    return Prompts.load().window_prompt(window, events, info), finding_schema(list(info))


def test_a_literal_rule_answers_the_official_client(url: str) -> None:
    answer = ollama.Client(host=url).generate(model="llama3.2", prompt="How is pump 3?")
    assert answer.response == "Pump 3 runs at 1450 rpm." and answer.done


def test_a_triggers_rule_answers_an_analysis_prompt_with_its_triggers(url: str) -> None:
    prompt, schema = window_prompt()
    messages = [
        {"role": "system", "content": Prompts.load().system},
        {"role": "user", "content": prompt},
    ]
    answer = ollama.Client(host=url).chat(model="llama3.2", messages=messages, format=schema)
    finding = parse_answer(answer.message.content or "", schema)
    assert finding["severity"] == "critical"
    assert finding["points"] == ["supply_temperature"]
    assert "supply_temperature reached 93.22 °C, above 85 °C" in finding["summary"]


def test_a_status_rule_is_an_error_status_and_no_rule_is_the_usual_answer(url: str) -> None:
    client = ollama.Client(host=url)
    with pytest.raises(ollama.ResponseError) as raised:
        client.generate(model="llama3.2", prompt="break it")
    assert raised.value.status_code == 503 and raised.value.error == "scripted: busy"
    assert client.generate(model="llama3.2", prompt="How is the fan?").response


def test_a_literal_answer_that_breaks_the_format_is_a_500_naming_the_rule(url: str) -> None:
    with pytest.raises(ollama.ResponseError) as raised:
        ollama.Client(host=url).generate(model="llama3.2", prompt="pump 3", format="json")
    assert raised.value.status_code == 500
    assert "answers.toml, rule 1: its answer does not match" in raised.value.error


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("s.toml", '[[rule]]\nanswer = "a"\n[[rule]]\ncontain = "x"\nanswer = "b"\n',
         "s.toml: rule 2: unknown key 'contain'; known: model, "),
        ("s.toml", "[[rule]\n", "s.toml: not valid TOML: "),
        ("s.json", '{"rule": [', "s.json: not valid JSON: "),
    ],
)  # fmt: skip
def test_a_wrong_script_is_one_line_and_exit_2(
    tmp_path: Path, name: str, text: str, error: str
) -> None:
    script = tmp_path / name
    script.write_text(text, encoding="utf-8")
    process = simulate(script)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2 and out == ""
    assert err.startswith("error: script ") and error in err and err.count("\n") == 1, err


def test_a_missing_script_is_refused_before_listening(tmp_path: Path) -> None:
    process = simulate(tmp_path / "none.toml")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2 and out == "" and "none.toml" in err, err
