"""The whole config of an edge node: the gateway's tables and [analysis] read in one go,
every problem at once, each with its exact path, in the same words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcptool.analysis import AnalysisConfig, ThresholdRule
from mcptool.edge import analysis_config, load_config, parse_config
from mcptool.gateway import ConfigError


def base(**extra: Any) -> dict[str, Any]:
    return {
        "node": "edge",
        "jsonl": {"path": "-"},
        "devices": [{"name": "d", "host": "127.0.0.1", "points": [{"name": "p", "address": 0}]}],
        **extra,
    }


def test_an_analysis_table_is_read_into_the_analysis_settings(tmp_path: Path) -> None:
    config = parse_config(
        base(analysis={"window_s": 30, "thresholds": [{"point": "p", "above": 5}]}),
        base_dir=tmp_path,
    )
    assert analysis_config(config) == AnalysisConfig(
        window_s=30.0, thresholds=(ThresholdRule("p", above=5.0),)
    )
    assert analysis_config(parse_config(base())) is None
    [analysis] = [sink for sink, _ in config.enabled_sinks() if sink.name == "analysis"]
    assert analysis.label(config.sinks["analysis"]) == "analysis by llama3.2"


def test_problems_of_the_gateway_and_the_analysis_come_together_with_their_paths() -> None:
    raw = base(
        analysis={
            "window_s": "10s",
            "thresholds": [{"point": "p", "above": 1}, {"point": "q", "above": float("nan")}],
        }
    )
    raw["devices"][0]["points"][0]["scale"] = float("inf")
    with pytest.raises(ConfigError) as refused:
        parse_config(raw)
    assert [str(p) for p in refused.value.problems] == [
        "devices[0].points[0].scale: should be a finite number, got inf",
        "analysis.window_s: should be a valid number, got '10s'",
        "analysis.thresholds[1].above: should be a finite number, got nan",
    ]


def test_analysis_alone_is_no_destination() -> None:
    raw = base(analysis={})
    del raw["jsonl"]
    with pytest.raises(ConfigError, match=r"no destination: add one of \[mqtt\]"):
        parse_config(raw)


def test_a_toml_file_with_a_bad_threshold_names_it(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        'node = "edge"\n[jsonl]\npath = "-"\n'
        '[[devices]]\nname = "d"\nhost = "127.0.0.1"\n'
        'points = [{name = "p", address = 0}]\n'
        '[analysis]\n[[analysis.thresholds]]\npoint = "p"\nabove = nan\n'
    )
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(refused.value) == (
        f"{path}: analysis.thresholds[0].above: should be a finite number, got nan"
    )
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(path.read_text().replace("above = nan", "above = 1\n[analysis.x]"))
    with pytest.raises(ConfigError, match=r"analysis\.x: unknown setting"):
        load_config(unknown)


def test_relative_analysis_paths_are_taken_from_the_config_directory(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        'node = "edge"\n[jsonl]\npath = "-"\n'
        '[[devices]]\nname = "d"\nhost = "127.0.0.1"\n'
        'points = [{name = "p", address = 0}]\n'
        '[analysis]\nqueue_path = "state/backlog.db"\n'
    )
    analysis = analysis_config(load_config(path))
    assert analysis is not None and analysis.queue_path == tmp_path / "state/backlog.db"
