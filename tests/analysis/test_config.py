"""The [analysis] table: good values load, every mistake is one line naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

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
        ({"windw_s": 10}, "analysis.windw_s: unknown key (did you mean `window_s`?)"),
        ({"window_s": "10s"}, "analysis.window_s: must be a number, not '10s'"),
        ({"window_s": 0}, "analysis.window_s: must be a positive number of seconds"),
        ({"every_window": "yes"}, "analysis.every_window: must be true or false"),
        ({"max_in_flight": 0}, "analysis.max_in_flight: must be at least 1"),
        ({"thresholds": [{"point": "t"}]}, "analysis.thresholds[0]: give `above`, `below`"),
        ({"thresholds": [{"point": "t", "abve": 1}]}, "analysis.thresholds[0].abve: unknown"),
        ({"thresholds": [{"above": 1}]}, "analysis.thresholds[0].point: name the point"),
        ({"prompts_dir": "/nonexistent/prompts"}, "analysis.prompts_dir: /nonexistent/prompts"),
        ({"min_baseline_windows": 50}, "analysis.min_baseline_windows: must be between"),
    ],
)
def test_mistakes_are_one_line_usage_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(AnalysisConfigError) as caught:
        AnalysisConfig.from_dict(table)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, UsageError)


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
        ({"window_s": float("nan")}, "analysis.window_s: must be a finite number, not nan"),
        ({"zscore": float("inf")}, "analysis.zscore: must be a finite number, not inf"),
        ({"cooldown_s": float("-inf")}, "analysis.cooldown_s: must be a finite number, not -inf"),
        (
            {"thresholds": [{"point": "t", "above": float("nan")}]},
            "analysis.thresholds[0].above: must be a finite number, not nan",
        ),
    ],
)
def test_nan_and_infinities_are_refused_naming_the_key(
    table: dict[str, object], message: str
) -> None:
    with pytest.raises(AnalysisConfigError) as refused:
        AnalysisConfig.from_dict(table)
    assert str(refused.value) == message


FLOAT_KEYS = [
    f.name for f in dataclasses.fields(AnalysisConfig) if f.type in ("float", "float | None")
]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_every_float_key_refuses_non_finite_numbers(key: str, value: float) -> None:
    assert {"window_s", "temperature", "cooldown_s"} <= set(FLOAT_KEYS)
    with pytest.raises(AnalysisConfigError) as refused:
        AnalysisConfig.from_dict({key: value})
    assert str(refused.value) == f"analysis.{key}: must be a finite number, not {value!r}"
