"""Triggers fire when, and only when, their rule says so (scripted device values)."""

from __future__ import annotations

import dataclasses
import math

from mcptool.analysis import AnalysisConfig, Analyzer, ThresholdRule
from tests.analysis.conftest import T0, feed, rules


def noisy(base: float, amplitude: float = 0.5):  # deterministic "noise" that varies
    return lambda w, i: base + amplitude * math.sin(i * 1.7 + w * 0.3)


def test_steady_noisy_values_fire_nothing(config: AnalysisConfig) -> None:
    assert rules(feed(Analyzer(config), "boiler", 30, noisy(60.0))) == []


def test_threshold_fires_on_the_window_with_one_reading_above_the_limit() -> None:
    config = AnalysisConfig(thresholds=(ThresholdRule("temp*", above=80.0),), zscore=None)
    analyzer = Analyzer(config)
    spike = lambda w, i: 85.0 if (w, i) == (3, 4) else 60.0  # noqa: E731
    reports = feed(analyzer, "boiler", 6, {"temperature": spike})
    assert rules(reports) == [(3, "threshold")]
    event = reports[3].events[0]
    assert event.points == ("temperature",)
    assert "85" in event.detail and "above 80" in event.detail


def test_threshold_below_and_device_pattern() -> None:
    rule = ThresholdRule("pressure", device="boiler*", below=1.0, severity="critical")
    analyzer = Analyzer(AnalysisConfig(thresholds=(rule,), zscore=None))
    low = lambda w, i: 0.5 if w == 2 else 2.0  # noqa: E731
    assert rules(feed(analyzer, "boiler-1", 4, {"pressure": low})) == [(2, "threshold")]
    assert rules(feed(analyzer, "chiller", 4, {"pressure": low})) == []  # other device
    critical = feed(Analyzer(AnalysisConfig(thresholds=(rule,))), "boiler", 3, {"pressure": low})
    assert critical[2].events[0].severity == "critical"


def test_zscore_waits_for_the_baseline_then_fires_on_a_shift(config: AnalysisConfig) -> None:
    analyzer = Analyzer(config)
    # a shift in window 2 is inside the warm-up (fewer than 5 past windows): no event
    early = feed(analyzer, "boiler", 4, lambda w, i: 90.0 if w == 2 else 60.0 + 0.1 * (i % 3))
    assert rules(early) == []
    analyzer = Analyzer(config)
    shifted = lambda w, i: (70.0 if w == 12 else 60.0) + 0.5 * math.sin(i + w)  # noqa: E731
    reports = feed(analyzer, "boiler", 14, shifted)
    assert rules(reports) == [(12, "zscore")]
    assert reports[12].usual["p"].windows == 12  # the prompt's "usual" excludes the window


def test_zscore_off_means_no_zscore_events(config: AnalysisConfig) -> None:
    analyzer = Analyzer(dataclasses.replace(config, zscore=None))
    shifted = lambda w, i: (70.0 if w == 12 else 60.0) + 0.5 * math.sin(i + w)  # noqa: E731
    assert rules(feed(analyzer, "boiler", 14, shifted)) == []


def test_stuck_fires_for_a_point_that_moved_and_froze_not_for_a_setpoint(
    config: AnalysisConfig,
) -> None:
    analyzer = Analyzer(dataclasses.replace(config, zscore=None))
    frozen = lambda w, i: 61.25 if w >= 8 else 60.0 + math.sin(i + w)  # noqa: E731
    setpoint = lambda w, i: 65.0  # noqa: E731
    reports = feed(analyzer, "boiler", 10, {"temp": frozen, "setpoint": setpoint})
    assert rules(reports) == [(8, "stuck"), (9, "stuck")]
    assert reports[8].events[0].points == ("temp",)


def test_flatline_fires_when_the_noise_collapses(config: AnalysisConfig) -> None:
    analyzer = Analyzer(dataclasses.replace(config, zscore=None))
    flat = lambda w, i: 60.0 + (0.001 if w >= 8 else 1.0) * math.sin(i * 1.3)  # noqa: E731
    assert rules(feed(analyzer, "boiler", 9, flat)) == [(8, "flatline")]


def test_flatline_does_not_fire_at_the_crest_of_a_smooth_sine(config: AnalysisConfig) -> None:
    """Spread is large on the flanks and small at the crests; the noise is the same."""
    analyzer = Analyzer(dataclasses.replace(config, zscore=None))
    for noise in (0.0, 0.01):  # a 10-minute period: each crest is nearly flat for 10 s

        def sine(w: int, i: int, noise: float = noise) -> float:
            t = w * 10 + i
            return 60.0 + 10 * math.sin(2 * math.pi * t / 600) + noise * math.sin(i * 2.3 + w)

        assert rules(feed(analyzer, f"tank-{noise}", 90, sine)) == []


def test_flatline_still_fires_on_a_sine_whose_noise_vanished(config: AnalysisConfig) -> None:
    analyzer = Analyzer(dataclasses.replace(config, zscore=None))

    def sine(w: int, i: int) -> float:
        level = 60.0 + 10 * math.sin(2 * math.pi * (w * 10 + i) / 600)
        return level + (0.0 if w >= 12 else 0.2 * math.sin(i * 2.3 + w * 0.7))

    assert (12, "flatline") in rules(feed(analyzer, "tank", 13, sine))


def test_stuck_does_not_fire_on_a_slowly_changing_quantised_register(
    config: AnalysisConfig,
) -> None:
    """A scaled int16 (0.1 °C a count) creeping 0.005 °C/s: a step every 20 s, so a
    window with no change is ordinary for it."""
    analyzer = Analyzer(dataclasses.replace(config, zscore=None))
    creeping = lambda w, i: round(50.0 + 0.005 * (w * 10 + i), 1)  # noqa: E731
    assert rules(feed(analyzer, "tank", 40, creeping)) == []


def test_discrete_points_never_fire_statistical_rules(config: AnalysisConfig) -> None:
    analyzer = Analyzer(config)
    toggling = lambda w, i: w >= 8  # noqa: E731 - off for 8 windows, then on
    assert rules(feed(analyzer, "io", 12, {"di0": toggling})) == []


def test_offline_fires_once_after_the_silence_and_again_only_after_a_return(
    config: AnalysisConfig,
) -> None:
    analyzer = Analyzer(config)
    feed(analyzer, "meter", 2, noisy(230.0))  # last reading at T0 + 19
    assert [r for r in analyzer.tick(T0 + 19 + 29) if r.events] == []
    reports = analyzer.tick(T0 + 19 + 30)
    assert [e.rule for r in reports for e in r.events] == ["offline"]
    assert reports[0].events[0].severity == "critical"
    assert analyzer.is_offline("meter")
    assert analyzer.tick(T0 + 200) == []  # said once
    analyzer.observe("meter", T0 + 300, {"p": 230.0})
    assert not analyzer.is_offline("meter")
    again = analyzer.tick(T0 + 340)
    assert [e.rule for r in again for e in r.events] == ["offline"]


def test_a_device_that_never_answers_goes_offline(config: AnalysisConfig) -> None:
    analyzer = Analyzer(config)
    analyzer.add_device("plc", ["p1", "p2"])
    for k in range(31):
        analyzer.observe_failure("plc", T0 + k)
    events = [e for r in analyzer.tick(T0 + 31) for e in r.events]
    assert [e.rule for e in events] == ["offline"]
    assert set(events[0].points) == {"p1", "p2"}


def test_every_window_fires_for_each_window_with_data(config: AnalysisConfig) -> None:
    analyzer = Analyzer(dataclasses.replace(config, every_window=True))
    assert rules(feed(analyzer, "boiler", 3, noisy(60.0))) == [
        (0, "every_window"),
        (1, "every_window"),
        (2, "every_window"),
    ]


def test_a_window_cut_short_by_a_stop_is_judged_by_thresholds_only_and_not_learnt() -> None:
    """At a stop the open window is judged as it is: three readings at a smooth sine's
    crest have almost no noise about their line and a mean off the usual level, so the
    statistical rules would fire on nothing but the stop; a breach still counts."""
    config = AnalysisConfig(thresholds=(ThresholdRule("p", above=69.9),), zscore=None)
    analyzer = Analyzer(config)

    def sine(w: int, i: int) -> float:
        t = w * 10 + i
        return 60.0 + 10 * math.sin(2 * math.pi * t / 120) + 0.05 * math.sin(i * 2.3 + w)

    whole = feed(analyzer, "tank", 12, sine)  # crests at t = 30 and 150: thresholds only
    assert {rule for _, rule in rules(whole)} == {"threshold"}
    for i in range(3):  # three readings near the crest at t = 150, then the stop
        analyzer.observe("tank", T0 + 145 + i * 0.5, {"p": 70.0 - 0.001 * i})
    learnt = len(analyzer.triggers.baseline.get("tank", "p").means)
    (report,) = analyzer.flush()
    assert report.window.start == T0 + 140
    assert report.window.partial
    assert [e.rule for e in report.events] == ["threshold"]
    assert len(analyzer.triggers.baseline.get("tank", "p").means) == learnt
