"""Prompts: one per device window, statistics and names (not raw series), user overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcptool.analysis import AnalysisConfig, AnalysisConfigError, Analyzer, Prompts
from mcptool.analysis.analyzer import PointInfo
from mcptool.analysis.prompting import render_points
from mcptool.analysis.stats import DeviceWindow
from mcptool.modbus.registermap import DataType, Point, Table
from tests.analysis.conftest import T0, feed


def boiler_report(config: AnalysisConfig):
    analyzer = Analyzer(config)
    analyzer.add_device(
        "boiler",
        [
            Point("flow_temperature", Table.HOLDING, 0, DataType.FLOAT32, unit="°C"),
            Point("pressure", Table.HOLDING, 2, DataType.FLOAT32, unit="bar"),
            Point("burner_on", Table.COIL, 0, DataType.BOOL),
        ],
        description="gas boiler, hall 2",
    )
    values = {
        "flow_temperature": lambda w, i: (95.0 if w == 6 else 70.0) + 0.3 * (i % 3),
        "pressure": lambda w, i: 1.5 + 0.01 * (i % 2),
        "burner_on": lambda w, i: i % 2 == 0,
    }
    reports = feed(analyzer, "boiler", 7, values)
    return analyzer, reports[6]


def test_the_window_prompt_holds_statistics_names_units_and_triggers(
    config: AnalysisConfig,
) -> None:
    analyzer, report = boiler_report(config)
    assert [e.rule for e in report.events] == ["zscore"]
    text = Prompts.load().window_prompt(
        report.window, report.events, analyzer.point_info("boiler"), report.usual,
        analyzer.description("boiler"),
    )  # fmt: skip
    assert "Device: boiler" in text and "gas boiler, hall 2" in text
    assert "- flow_temperature (°C): n=10, min 95, max 95.6, mean 95.27" in text
    assert "usual level 70.27 °C" in text  # the baseline, from before this window
    assert "- pressure (bar): n=10" in text
    assert "- burner_on: n=10, on 50% of the time" in text
    assert "[zscore] flow_temperature mean 95.27 °C" in text
    assert "95.3" not in text.replace("95.27", "")  # no raw series: values appear as stats only


def test_a_user_prompt_directory_replaces_files_by_name(tmp_path: Path) -> None:
    (tmp_path / "system.txt").write_text("Be brief.", encoding="utf-8")
    prompts = Prompts.load(tmp_path)
    assert prompts.system == "Be brief."
    assert prompts.sources["system.txt"] == str(tmp_path / "system.txt")
    assert prompts.sources["window.txt"] == "(default) window.txt"


def test_an_unknown_placeholder_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "window.txt").write_text("Device $devce", encoding="utf-8")
    with pytest.raises(AnalysisConfigError, match=r"window.txt: unknown placeholder \$devce"):
        Prompts.load(tmp_path)


def test_a_trend_within_its_noise_is_not_shown_as_one() -> None:
    noisy = DeviceWindow("boiler", 10.0, 5.0, units={"t": "°C"})
    rising = DeviceWindow("boiler", 10.0, 5.0, units={"t": "°C"})
    for i in range(4):  # four seconds of noise, and four of a real rise
        noisy.add(T0 + i, {"t": 60.0 + (0.3, -0.2, 0.25, -0.1)[i]})
        rising.add(T0 + i, {"t": 60.0 + 2.0 * i + (0.1, -0.1, 0.1, -0.1)[i]})
    quiet = render_points(noisy.close(), {"t": PointInfo("t", "°C")})
    assert "no significant trend" in quiet and "/min" not in quiet
    assert "trend +117.6 °C/min" in render_points(rising.close(), {"t": PointInfo("t", "°C")})
