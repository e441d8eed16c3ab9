"""A finding built from the analysis prompt's own triggers: the simulator's known-correct
answer to ``mcptool.analysis``'s window prompt.

The demo answers with it when no model is installed, and ``mcptool simulate ollama
--script`` answers with it for a rule that says ``triggers = true``, so a test outside
Python has a reference: the severity is the worst trigger's, the points are the ones the
triggers name, and the summary quotes the trigger lines. Every summary starts
"Simulated:" so no published copy can pass for a model's explanation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from mcptool.analysis.findings import LINES_MAX, POINTS_MAX, SEVERITIES, SUMMARY_MAX

# "- critical [threshold] supply_temperature reached 93.22 °C" (the severity was added to
# the prompt later; an older prompt or a user's own template may leave it out)
_TRIGGER = re.compile(r"^- (?:(\w+) )?\[(\w+)\] (.+)$", re.M)
_DEVICE = re.compile(r"Device: (\S+)")
# a statistics line: "- name (unit) [description]: n=..."
_POINT = re.compile(r"^- ([^\s:(\[]+)(?: \([^)]*\))?(?: \[[^\]]*\])?: ", re.M)

_CAUSES = [
    (
        "temperature",
        [
            "circulation pump stopped or running slow",
            "mixing valve stuck open",
            "burner not modulating down",
        ],
        [
            "check the circulation pump runs and the flow is normal",
            "check the mixing valve position against the controller's demand",
            "reduce the burner load or switch to manual until the cause is found",
        ],
    ),
    (
        "pressure",
        ["leak in the heating circuit", "expansion vessel lost its pre-charge"],
        ["look for leaks and refill to the nominal pressure", "check the expansion vessel"],
    ),
    (
        "voltage",
        ["supply voltage disturbance", "loose neutral connection"],
        ["compare with the other phases and the utility's notices", "check the terminals"],
    ),
    ("power", ["load change in the plant"], ["compare with the production schedule"]),
]


def device_of(prompt: str) -> str | None:
    """The device the window prompt is about, or None for another prompt."""
    found = _DEVICE.search(prompt)
    return found[1] if found else None


def triggers_of(prompt: str) -> list[tuple[str, str, str]]:
    """The prompt's trigger lines as (severity or "", rule, detail)."""
    return [(m[1] or "", m[2], m[3].strip()) for m in _TRIGGER.finditer(prompt)]


def trigger_finding(prompt: str, fmt: Any = None) -> str:
    """The finding (JSON text) that follows ``prompt``'s triggers; ``fmt``'s schema, when
    it lists the allowed point names, bounds the points."""
    device = device_of(prompt) or "the device"
    triggers = triggers_of(prompt)
    schema = fmt if isinstance(fmt, Mapping) else {}
    allowed = schema.get("properties", {}).get("points", {}).get("items", {}).get("enum")
    names = list(allowed or _POINT.findall(prompt))
    points = [p for p in names if any(p in detail for _, _, detail in triggers)] or names[:1]
    shown = [SEVERITIES.index(s) for s, _, _ in triggers if s in SEVERITIES]
    if shown:
        severity = SEVERITIES[max(shown)]
    else:  # a prompt without the severities: the rules that are critical by nature
        critical = any(rule in ("threshold", "offline") for _, rule, _ in triggers)
        severity = "critical" if critical else "warning" if triggers else "normal"
    causes: list[str] = []
    actions: list[str] = []
    for word, c, a in _CAUSES:
        if any(word in p for p in points):
            causes += c
            actions += a
    if any(rule == "offline" for _, rule, _ in triggers):
        causes, actions = ["device lost power or network"], ["check the device's supply and link"]
    # the triggers' words as they are: str.capitalize() made "93.22 °C" read "93.22 °c"
    said = "; ".join(detail for _, _, detail in triggers[:2]) or "no rule flagged this window"
    advice = (
        f". {device} needs a look before it trips on its safety limits."
        if severity == "critical"
        else "."
    )
    return json.dumps(
        {
            "summary": f"Simulated: {said}{advice}"[:SUMMARY_MAX],
            "suspected_causes": (causes or ["sensor fault or a change in the process"])[:LINES_MAX],
            "recommended_actions": (actions or ["compare with a local gauge"])[:LINES_MAX],
            "points": points[:POINTS_MAX],
            "severity": severity,
        }
    )
