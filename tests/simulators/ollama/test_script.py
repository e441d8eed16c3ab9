"""``--script`` rules: matched in order, each condition narrowing, and a script that is
wrong refused in one line naming the file, the rule and the key."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mcptool.errors import UsageError
from simulators.ollama.script import Rule, Script, asked, load_script

PROMPT = (
    "Device: boiler\n"
    "Why this window was flagged:\n"
    "- warning [zscore] pressure mean 1.9 bar, usual 1.5 bar\n"
    "- critical [threshold] supply_temperature reached 93.22 °C, above 85 °C\n\n"
    "Statistics per point:\n"
    "- supply_temperature (°C): n=10, min 90\n"
    "- pressure (bar): n=10, min 1.8\n"
    "- setpoint (°C): n=10, min 70\n"
)


def chat(content: str, model: str = "llama3.2", **extra: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "Device: not-this-one"},
        {"role": "user", "content": "an earlier question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": content},
    ]
    return {"model": model, "messages": messages, **extra}


def script(tmp_path: Path, text: str, name: str = "s.toml") -> Script:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_script(path)


def test_rules_look_at_the_last_user_message_or_the_prompt() -> None:
    assert asked("chat", chat("pump 3?")) == "pump 3?"
    assert asked("generate", {"prompt": "pump 4?"}) == "pump 4?"
    assert asked("chat", {"messages": [{"role": "system", "content": "x"}]}) == ""


def test_the_first_matching_rule_answers(tmp_path: Path) -> None:
    s = script(
        tmp_path,
        '[[rule]]\ncontains = "pump"\nanswer = "first"\n'
        '[[rule]]\ncontains = "pump 3"\nanswer = "second"\n',
    )
    rule = s.match("chat", chat("how is pump 3?"))
    assert rule is not None and rule.index == 1 and rule.text("chat", chat("")) == "first"
    assert s.match("chat", chat("how is the fan?")) is None


@pytest.mark.parametrize(
    ("condition", "kind", "body", "matches"),
    [
        ({"model": "llama3.2"}, "chat", chat("x", "llama3.2:latest"), True),
        ({"model": "llama3.2:latest"}, "chat", chat("x", "llama3.2"), True),
        ({"model": "qwen*"}, "chat", chat("x", "qwen2.5:0.5b"), True),
        ({"model": "qwen*"}, "chat", chat("x", "llama3.2"), False),
        ({"endpoint": "generate"}, "chat", chat("x"), False),
        ({"endpoint": "generate"}, "generate", {"prompt": "x"}, True),
        ({"regex": re.compile(r"^how .* \d+\?$")}, "chat", chat("how is pump 3?"), True),
        ({"contains": "earlier"}, "chat", chat("x"), False),  # not the last user message
        ({"device": "boiler"}, "chat", chat(PROMPT), True),
        ({"device": "not-this-one"}, "chat", chat(PROMPT), False),  # the system message's
        ({"trigger": "threshold"}, "chat", chat(PROMPT), True),
        ({"trigger": "offline"}, "chat", chat(PROMPT), False),
    ],
)
def test_each_condition_narrows_the_match(
    condition: dict[str, Any], kind: str, body: dict[str, Any], matches: bool
) -> None:
    rule = Rule(1, answer="yes", **condition)
    assert rule.matches(kind, body) is matches


def test_embeddings_and_other_endpoints_are_never_scripted() -> None:
    assert Script("s", (Rule(1, answer="yes"),)).match("embed", {"input": "x"}) is None


def test_a_triggers_answer_follows_the_prompts_triggers() -> None:
    enum = ["supply_temperature", "pressure", "setpoint"]
    fmt = {"type": "object", "properties": {"points": {"items": {"enum": enum}}}}
    text = Rule(1, triggers=True).text("chat", chat(PROMPT, format=fmt))
    finding = json.loads(text)
    assert finding["severity"] == "critical"  # the worst trigger's
    assert finding["points"] == ["supply_temperature", "pressure"]
    assert finding["summary"].startswith(
        "Simulated: pressure mean 1.9 bar, usual 1.5 bar; supply_temperature reached 93.22 °C"
    )


def test_without_a_schema_the_points_come_from_the_prompts_statistics() -> None:
    prompt = PROMPT.replace("critical [threshold]", "warning [trend]")
    finding = json.loads(Rule(1, triggers=True).text("generate", {"prompt": prompt}))
    assert finding["severity"] == "warning"
    assert finding["points"] == ["supply_temperature", "pressure"]


def test_a_literal_answer_must_satisfy_the_requests_format() -> None:
    rule = Rule(1, answer='{"ok": 1}')
    assert rule.text("chat", chat("x", format="json")) == '{"ok": 1}'
    schema = {"type": "object", "required": ["severity"]}
    with pytest.raises(ValueError, match="severity"):
        rule.text("chat", chat("x", format=schema))
    with pytest.raises(ValueError, match="not JSON"):
        Rule(1, answer="plain words").text("chat", chat("x", format="json"))


def test_a_json_script_holds_the_same_rules(tmp_path: Path) -> None:
    rules = {"rule": [{"contains": "pump", "answer": {"state": "ok"}, "delay_s": 0.5}]}
    s = script(tmp_path, json.dumps(rules), "s.json")
    rule = s.match("chat", chat("pump?"))
    assert rule is not None and rule.delay_s == 0.5
    assert json.loads(rule.text("chat", chat("pump?"))) == {"state": "ok"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[[rule]\n", r"s\.toml: not valid TOML: "),
        ('[[rule]]\ncontain = "x"\nanswer = "y"\n', r"s\.toml: rule 1: unknown key 'contain'"),
        (
            '[[rule]]\nanswer = "a"\n[[rule]]\nanswer = "b"\ndelay = 1\n',
            r"s\.toml: rule 2: unknown key 'delay'",
        ),
        ('[[rule]]\ncontains = "x"\n', r"rule 1: give exactly one of 'answer', 'triggers"),
        ('[[rule]]\nanswer = "a"\nstatus = 503\n', r"rule 1: .* \(it has answer, status\)"),
        ("[[rule]]\nstatus = 200\n", r"rule 1: key 'status' must be an HTTP error status"),
        ('[[rule]]\nregex = "("\nanswer = "a"\n', r"rule 1: key 'regex' is not a regular"),
        ('[[rule]]\nendpoint = "embed"\nanswer = "a"\n', r"rule 1: key 'endpoint' must be"),
        ('[[rule]]\ndelay_s = -1\nanswer = "a"\n', r"rule 1: key 'delay_s' must be seconds"),
        ("[[rule]]\nanswer = 3\n", r"rule 1: key 'answer' must be a text or a JSON object"),
        ('[[rules]]\nanswer = "a"\n', r"unknown key 'rules'; a script holds only 'rule'"),
    ],
)
def test_a_wrong_script_is_one_line_naming_file_rule_and_key(
    tmp_path: Path, text: str, error: str
) -> None:
    with pytest.raises(UsageError, match=error) as raised:
        script(tmp_path, text)
    assert "\n" not in str(raised.value)


def test_a_bad_json_script_says_json(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"s\.json: not valid JSON: "):
        script(tmp_path, "{", "s.json")
