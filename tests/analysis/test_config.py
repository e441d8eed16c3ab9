"""The [analysis] table: good values load, every mistake is one line naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from mcptool.analysis import AnalysisConfig, AnalysisConfigError, ThresholdRule
from mcptool.errors import UsageError


def test_a_full_table_loads_with_paths_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    config = AnalysisConfig.from_dict(
        {
            "model": "qwen2.5:7b",
            "window_s": 30,
            "zscore": False,
            "thresholds": [{"point": "temp*", "above": 90, "severity": "critical"}],
            "prompts_dir": "prompts",
            "queue_path": "state/analysis.db",
        },
        base_dir=tmp_path,
    )
    assert config.model == "qwen2.5:7b" and config.window_s == 30.0 and config.zscore is None
    assert config.thresholds == (ThresholdRule("temp*", above=90.0, severity="critical"),)
    assert config.prompts_dir == tmp_path / "prompts"
    assert config.queue_path == tmp_path / "state/analysis.db"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"windw_s": 10}, "analysis.windw_s: unknown setting (did you mean `window_s`?)"),
        ({"window_s": "10s"}, "analysis.window_s: should be a valid number, got '10s'"),
        ({"window_s": 0}, "analysis.window_s: should be a number above 0, got 0"),
        ({"every_window": "yes"}, "analysis.every_window: should be a valid boolean, got 'yes'"),
        ({"max_in_flight": 0}, "analysis.max_in_flight: should be greater than or equal to 1"),
        ({"max_in_flight": True}, "analysis.max_in_flight: should be a valid integer, got True"),
        ({"thresholds": [{"point": "t"}]}, "analysis.thresholds[0]: give `above`, `below`"),
        (
            {"thresholds": [{"point": "t", "abve": 1}]},
            "analysis.thresholds[0].abve: unknown setting",
        ),
        ({"thresholds": [{"above": 1}]}, "analysis.thresholds[0].point: missing (required)"),
        ({"prompts_dir": "/nonexistent/prompts"}, "analysis.prompts_dir: /nonexistent/prompts"),
        ({"min_baseline_windows": 50}, "analysis.min_baseline_windows: should be from 2 to"),
    ],
)
def test_mistakes_are_one_line_usage_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(AnalysisConfigError) as caught:
        AnalysisConfig.from_dict(table)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, UsageError)


def test_every_problem_is_reported_at_once_with_its_exact_path() -> None:
    """The same paths as the gateway's config: section, key, list index, key in the item."""
    table = {
        "window_s": -1,
        "stuck": 1,
        "thresholds": [
            {"point": "a", "above": 1},
            {"point": "b", "above": float("nan"), "severity": "bad"},
        ],
    }
    with pytest.raises(AnalysisConfigError) as caught:
        AnalysisConfig.from_dict(table)
    assert [str(p) for p in caught.value.problems] == [
        "analysis.window_s: should be a number above 0, got -1",
        "analysis.stuck: should be a valid boolean, got 1",
        "analysis.thresholds[1].above: should be a finite number, got nan",
        "analysis.thresholds[1].severity: should be 'warning' or 'critical', got 'bad'",
    ]
    assert str(caught.value) == f"{caught.value.problems[0]} (and 3 more)"


def test_false_turns_an_optional_setting_off() -> None:
    config = AnalysisConfig.from_dict({"zscore": False, "offline_after_s": False, "seed": False})
    assert (config.zscore, config.offline_after_s, config.seed) == (None, None, None)


def test_settings_made_in_code_are_checked_too() -> None:
    with pytest.raises(ValidationError):
        AnalysisConfig(window_s=float("nan"))
    with pytest.raises(ValidationError):
        ThresholdRule("t")  # neither above nor below


def test_every_key_is_accepted_with_its_default_value() -> None:
    defaults = AnalysisConfig()
    table = {
        f.name: getattr(defaults, f.name)
        for f in dataclasses.fields(AnalysisConfig)
        if getattr(defaults, f.name) is not None and f.name != "thresholds"
    }
    assert AnalysisConfig.from_dict(table) == defaults


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"window_s": float("nan")}, "analysis.window_s: should be a number above 0, got nan"),
        ({"zscore": float("inf")}, "analysis.zscore: should be a number above 0, got inf"),
        ({"cooldown_s": float("-inf")}, "analysis.cooldown_s: should be a number at least 0"),
        (
            {"thresholds": [{"point": "t", "above": float("nan")}]},
            "analysis.thresholds[0].above: should be a finite number, got nan",
        ),
    ],
)
def test_nan_and_infinities_are_refused_naming_the_key(
    table: dict[str, object], message: str
) -> None:
    with pytest.raises(AnalysisConfigError) as refused:
        AnalysisConfig.from_dict(table)
    assert str(refused.value).startswith(message)


FLOAT_KEYS = [
    name
    for name, value in dataclasses.asdict(AnalysisConfig()).items()
    if isinstance(value, float) or name in ("gap_after_s",)
]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_every_float_key_refuses_non_finite_numbers(key: str, value: float) -> None:
    assert {"window_s", "temperature", "cooldown_s", "zscore", "gap_after_s"} <= set(FLOAT_KEYS)
    with pytest.raises(AnalysisConfigError) as refused:
        AnalysisConfig.from_dict({key: value})
    [problem] = refused.value.problems
    assert problem.path == f"analysis.{key}"
    assert problem.message.startswith("should be a ") and problem.message.endswith(f"{value!r}")
