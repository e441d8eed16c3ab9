"""What the demo shows about a finding: who wrote it, in the words a technician reads."""

from __future__ import annotations

import json
from typing import Any

from mcptool.commands.demo import SIMULATED_MODEL, _demo_answer, _LiveOutput, _source

PROMPT = (
    "Device: boiler\n"
    "Why this window was flagged:\n"
    "- critical [threshold] supply_temperature reached 93.22 °C, above 85 °C\n"
)
SCHEMA = {"properties": {"points": {"items": {"enum": ["supply_temperature", "setpoint"]}}}}


def test_the_simulated_answer_says_it_is_simulated_and_keeps_the_units_case() -> None:
    body = {"format": SCHEMA, "messages": [{"role": "user", "content": PROMPT}]}
    answer = json.loads(_demo_answer("chat", body) or "")
    assert answer["summary"].startswith("Simulated: supply_temperature reached 93.22 °C")
    assert answer["severity"] == "critical" and answer["points"] == ["supply_temperature"]


def finding(**fields: Any) -> dict[str, Any]:
    return {"source": "model", "timings": {"total_ms": 14_200.0}, **fields}


def test_a_simulated_finding_is_labelled_simulated_not_as_a_model() -> None:
    label = _source(finding(model=SIMULATED_MODEL))
    assert label.startswith("simulated answer") and "not a model" in label


def test_a_small_model_is_labelled_as_one_with_what_the_checks_changed() -> None:
    label = _source(
        finding(model="qwen2.5-coder:0.5b", model_severity="normal", ungrounded=["0.8"])
    )
    assert label.startswith("qwen2.5-coder:0.5b, a small local model, 14.2 s")
    assert "it rated normal; the rules set the severity" in label
    assert "numbers not in the window: 0.8" in label
    assert _source(finding(model="llama3.1:70b")) == "llama3.1:70b, 14.2 s"


class StoppedGateway:
    def __init__(self) -> None:
        self.calls = 0

    def status(self) -> dict[str, Any]:
        self.calls += 1
        return {"devices": [{"device": "boiler", "status": "online"}]}


def test_the_last_frame_keeps_the_devices_last_status() -> None:
    view = _LiveOutput()
    view.gateway = StoppedGateway()
    view._render()
    view.gateway = None  # what the demo does once the gateway stopped, before the last frame
    assert view.online == {"boiler": "online"}
    [boiler] = [line for line in _plain(view._render()).splitlines() if "boiler " in line]
    assert "online" in boiler and "starting" not in boiler


def _plain(renderable: Any) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()
