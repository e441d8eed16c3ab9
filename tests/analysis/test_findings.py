"""Findings: only answers that satisfy the schema become findings; the record says all."""

from __future__ import annotations

import json

import pytest

from mcptool.analysis import (
    FINDING_SCHEMA,
    Finding,
    InvalidAnswer,
    finding_schema,
    parse_answer,
    statistics_finding,
)
from mcptool.analysis.findings import severity_ceiling, severity_floor

GOOD = {
    "severity": "warning",
    "summary": "Flow temperature rose 25 °C above its usual level.",
    "suspected_causes": ["fouled heat exchanger"],
    "recommended_actions": ["check the circulation pump"],
    "points": ["flow_temperature"],
}


def test_a_valid_answer_parses() -> None:
    schema = finding_schema(["flow_temperature", "pressure"])
    assert parse_answer(json.dumps(GOOD), schema) == GOOD


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("Sure! The boiler is fine.", "not JSON"),
        (json.dumps({**GOOD, "severity": "bad"}), "severity: 'bad' is not one of"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "summary"}), "'summary' is a required"),
        (json.dumps({**GOOD, "points": ["boiler_room_humidity"]}), "points/0: 'boiler_room_hum"),
        (json.dumps({**GOOD, "summary": ""}), "summary: '' should be non-empty"),
        (json.dumps({**GOOD, "extra": 1}), "Additional properties are not allowed"),
        (json.dumps({**GOOD, "points": ["pressure", "pressure"]}), "has non-unique elements"),
        (json.dumps({**GOOD, "summary": "x" * 301}), "summary: 'xxxxx"),
        (json.dumps({**GOOD, "suspected_causes": ["a", "b", "c", "d"]}), "is too long"),
        (json.dumps({**GOOD, "recommended_actions": ["y" * 161]}), "recommended_actions/0"),
    ],
)
def test_invalid_answers_are_refused_with_a_reason(answer: str, reason: str) -> None:
    with pytest.raises(InvalidAnswer) as caught:
        parse_answer(answer, finding_schema(["flow_temperature", "pressure"]))
    assert reason in caught.value.reason
    assert caught.value.raw == answer


def test_the_schema_for_a_device_names_only_its_points() -> None:
    schema = finding_schema(["a", "b"])
    assert schema["properties"]["points"]["items"]["enum"] == ["a", "b"]
    assert "enum" not in FINDING_SCHEMA["properties"]["points"]["items"]  # not mutated


def test_severity_comes_last_after_what_the_model_saw() -> None:
    """A small model rates after it has written its explanation, not before."""
    schema = finding_schema(["a"])
    assert list(schema["properties"])[-1] == "severity"
    assert schema["required"][-1] == "severity"


def test_a_device_schema_asks_for_at_most_its_points_each_once() -> None:
    points = finding_schema(["a", "b"])["properties"]["points"]
    assert points["maxItems"] == 2 and points["uniqueItems"] is True


@pytest.mark.parametrize(
    ("triggers", "floor"),
    [
        ([("zscore", "warning"), ("stuck", "warning")], "normal"),  # the model may say harmless
        ([("threshold", "warning")], "warning"),  # a limit someone set, crossed
        ([("zscore", "warning"), ("threshold", "critical")], "critical"),
        ([("offline", "critical")], "critical"),
        ([], "normal"),
    ],
)
def test_the_severity_floor_comes_from_thresholds_and_offline_only(
    triggers: list[tuple[str, str]], floor: str
) -> None:
    assert severity_floor([{"rule": r, "severity": s} for r, s in triggers]) == floor


def test_with_no_rule_fired_a_finding_is_at_most_a_warning() -> None:
    assert severity_ceiling([{"rule": "every_window", "severity": "normal"}]) == "warning"
    assert severity_ceiling([{"rule": "zscore"}, {"rule": "every_window"}]) == "critical"


def test_a_statistics_finding_is_marked_and_carries_window_triggers_and_reason() -> None:
    trigger = {"rule": "threshold", "points": ["pressure"], "detail": "pressure fell to 0.4 bar",
               "severity": "critical"}  # fmt: skip
    finding = statistics_finding(
        "boiler",
        100.0,
        110.0,
        [trigger],
        {"pressure": {"mean": 0.5}, "flow_temperature": {"mean": 70.0}},
        "model busy",
    )
    record = finding.as_dict()
    assert record["type"] == "finding" and record["source"] == "statistics"
    assert record["statistics_only"] is True
    assert record["severity"] == "critical" and record["points"] == ["pressure"]
    assert record["window"] == {"start": 100.0, "end": 110.0, "seconds": 10.0}
    assert record["reason"] == "model busy" and record["model"] is None
    assert record["statistics"] == {"pressure": {"mean": 0.5}}  # the points it is about
    assert Finding.from_dict(record) == finding
