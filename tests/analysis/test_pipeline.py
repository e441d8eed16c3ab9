"""The pipeline against the Ollama simulator, through mcptool's real Ollama client:
model calls only where triggers fired, validated findings, no window lost."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

from mcptool.analysis import (
    SEVERITIES,
    AnalysisConfig,
    AnalysisPipeline,
    Backlog,
    OllamaModel,
    ThresholdRule,
)
from mcptool.ollama import OllamaClient, RetryPolicy
from simulators.ollama import BUSY_MESSAGE, OllamaSimulator
from tests.analysis.conftest import T0, Clock, Collector, drive, fast_model, shifted

CHAT = ("/api/chat",)  # the pipeline's calls; its model preload goes to /api/generate


def chat_calls(sim: OllamaSimulator) -> int:
    return sim.counters.by_path["/api/chat"]


async def test_a_triggered_window_becomes_a_validated_model_finding(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig
) -> None:
    sink, clock = Collector(), Clock()
    model = fast_model(ollama.url, pipeline_config)
    async with AnalysisPipeline(pipeline_config, sink=sink, model=model, clock=clock) as pipeline:
        pipeline.add_device("boiler", ["p", "q"])
        drive(pipeline, clock, "boiler", range(7), shifted({5}))  # windows 0-5 close
        [finding] = await sink.wait_for("finding")
        await pipeline.wait_idle()
    await model.aclose()
    assert finding["source"] == "model" and finding["statistics_only"] is False
    assert finding["device"] == "boiler" and finding["model"] == "llama3.2"
    assert finding["window"]["start"] == 1_700_000_050.0 and finding["window"]["seconds"] == 10
    assert finding["severity"] in SEVERITIES and finding["summary"]
    assert set(finding["points"]) <= {"p", "q"}
    assert {"total_ms", "eval_ms", "prompt_tokens", "wall_ms", "queued_ms"} <= set(
        finding["timings"]
    )
    assert [t["rule"] for t in finding["triggers"]] == ["zscore"]
    assert finding["statistics"]["p"]["count"] == 5
    assert [r["rule"] for r in sink.of("trigger")] == ["zscore"]
    assert chat_calls(ollama) == 1  # six windows closed, one was worth a call


async def test_quiet_windows_cost_no_model_call(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig
) -> None:
    sink, clock = Collector(), Clock()
    model = fast_model(ollama.url, pipeline_config)
    async with AnalysisPipeline(pipeline_config, sink=sink, model=model, clock=clock) as pipeline:
        drive(pipeline, clock, "boiler", range(20), shifted(set()))
        await pipeline.wait_idle()
        assert pipeline.stats()["windows"] == 19
    await model.aclose()
    assert sink.records == [] and chat_calls(ollama) == 0


async def test_a_busy_ollama_loses_no_window_and_statistics_findings_go_out_meanwhile(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig
) -> None:
    config = dataclasses.replace(pipeline_config, every_window=True)
    ollama.inject("status", status=503, message=BUSY_MESSAGE, times=None)
    sink, clock = Collector(), Clock()
    model = fast_model(ollama.url, config)
    async with AnalysisPipeline(config, sink=sink, model=model, clock=clock) as pipeline:
        drive(pipeline, clock, "boiler", range(4), shifted(set()))  # windows 0-2 close
        stats_only = await sink.wait_for("finding", 3, source="statistics")
        assert all("busy" in f["reason"] for f in stats_only)
        assert len(pipeline.backlog) == 3 and pipeline.model_down
        ollama.clear_faults()  # Ollama has room again
        found = await sink.wait_for("finding", 3, source="model")
        await pipeline.wait_idle()
        assert len(pipeline.backlog) == 0 and pipeline.model_down is None
    await model.aclose()
    starts = [f["window"]["start"] for f in found]
    assert starts == [f["window"]["start"] for f in stats_only]  # every window, oldest first
    assert len(set(starts)) == 3
    assert ollama.counters.by_status[503] >= 1


async def test_a_dead_ollama_loses_no_window_even_across_a_restart(
    tmp_path: Path, pipeline_config: AnalysisConfig
) -> None:
    config = dataclasses.replace(pipeline_config, every_window=True)
    path = tmp_path / "analysis.db"
    async with OllamaSimulator(models=["llama3.2"], port=0) as gone:
        dead_url = gone.url  # nothing listens there once the block ends
    sink, clock = Collector(), Clock()
    model = fast_model(dead_url, config)
    pipeline = AnalysisPipeline(
        config, sink=sink, model=model, clock=clock, backlog=Backlog(path, 100)
    )
    async with pipeline:
        drive(pipeline, clock, "meter", range(3), shifted(set()))  # windows 0-1 close
        stats_only = await sink.wait_for("finding", 2, source="statistics")
        assert "cannot reach Ollama" in stats_only[0]["reason"]
    await model.aclose()  # the gateway stops with two windows still unexplained

    async with OllamaSimulator(models=["llama3.2"], port=0) as ollama:
        sink2 = Collector()
        model = fast_model(ollama.url, config)
        restarted = AnalysisPipeline(
            config, sink=sink2, model=model, clock=clock, backlog=Backlog(path, 100)
        )
        async with restarted:
            found = await sink2.wait_for("finding", 2, source="model")
            await restarted.wait_idle()
        await model.aclose()
    assert [f["window"]["start"] for f in found] == [f["window"]["start"] for f in stats_only]
    assert sink2.of("finding", source="statistics") == []  # already sent before the restart


async def test_an_invalid_answer_is_repaired_once(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig
) -> None:
    ollama.inject("invalid_output", output="The boiler looks hot to me.", times=1, paths=CHAT)
    sink, clock = Collector(), Clock()
    model = fast_model(ollama.url, pipeline_config)
    async with AnalysisPipeline(pipeline_config, sink=sink, model=model, clock=clock) as pipeline:
        drive(pipeline, clock, "boiler", range(7), shifted({5}))
        [finding] = await sink.wait_for("finding")
        await pipeline.wait_idle()
    await model.aclose()
    assert finding["source"] == "model" and finding["repaired"] is True
    assert chat_calls(ollama) == 2


async def test_an_answer_still_invalid_after_the_repair_is_reported_never_published(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig
) -> None:
    ollama.inject("invalid_output", output='{"severity": "meh"}', times=2, paths=CHAT)
    sink, clock = Collector(), Clock()
    model = fast_model(ollama.url, pipeline_config)
    async with AnalysisPipeline(pipeline_config, sink=sink, model=model, clock=clock) as pipeline:
        drive(pipeline, clock, "boiler", range(7), shifted({5}))
        [error] = await sink.wait_for("analysis_error")
        await pipeline.wait_idle()
        assert len(pipeline.backlog) == 0
    await model.aclose()
    assert (
        "invalid after one repair" in error["reason"] and error["answer"] == '{"severity": "meh"}'
    )
    assert sink.of("finding", source="model") == []
    [fallback] = sink.of("finding", source="statistics")
    assert "invalid after one repair" in fallback["reason"]
    assert chat_calls(ollama) == 2


async def test_the_same_trigger_again_within_the_cooldown_costs_no_call(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig
) -> None:
    config = dataclasses.replace(pipeline_config, cooldown_s=300.0, min_baseline_windows=3)
    sink, clock = Collector(), Clock()
    model = fast_model(ollama.url, config)
    async with AnalysisPipeline(config, sink=sink, model=model, clock=clock) as pipeline:
        drive(pipeline, clock, "boiler", range(8), shifted({5, 6}, by=40.0))
        await sink.wait_for("trigger", 2)
        await pipeline.wait_idle()
        assert pipeline.stats()["suppressed"] == 1
    await model.aclose()
    assert [t["model_call"] for t in sink.of("trigger")] == [True, False]
    assert len(sink.of("finding")) == 1 and chat_calls(ollama) == 1


async def test_without_a_model_every_flagged_window_gets_a_statistics_finding(
    pipeline_config: AnalysisConfig,
) -> None:
    sink, clock = Collector(), Clock()
    async with AnalysisPipeline(pipeline_config, sink=sink, model=None, clock=clock) as pipeline:
        drive(pipeline, clock, "boiler", range(7), shifted({5}))
        [finding] = await sink.wait_for("finding")
        await pipeline.wait_idle()
    assert finding["source"] == "statistics" and finding["reason"] == "no model configured"
    assert finding["points"] == ["p"] and finding["severity"] == "warning"


async def test_the_model_is_loaded_at_start_not_at_the_first_anomaly(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig
) -> None:
    model = fast_model(ollama.url, pipeline_config)
    async with AnalysisPipeline(pipeline_config, sink=Collector(), model=model, clock=Clock()):
        async with asyncio.timeout(10):
            while not ollama.is_loaded("llama3.2"):
                await asyncio.sleep(0.01)
    await model.aclose()
    assert chat_calls(ollama) == 0


async def test_replayed_old_readings_neither_split_windows_nor_look_offline() -> None:
    """After an outage the spool (or the link) replays old readings in a burst: the
    analysis follows the readings' time, not the wall clock."""
    config = AnalysisConfig(window_s=10.0, offline_after_s=30.0, every_window=True)
    sink, clock = Collector(), Clock(T0 + 3600)  # the wall clock is an hour ahead
    async with AnalysisPipeline(config, sink=sink, model=None, clock=clock) as pipeline:
        for i in range(60):  # one minute of readings from an hour ago, arriving now
            pipeline.observe("boiler", T0 + i, {"p": 60.0 + (i % 3)})
            pipeline.tick()  # what the ticker does meanwhile
        await pipeline.wait_idle()
        assert pipeline.stats()["windows"] == 5  # windows 0-4 whole; window 5 still open
        assert all(f["statistics"]["p"]["count"] == 10 for f in sink.of("finding"))
        assert sink.of("trigger", rule="offline") == []
        clock.now += 31  # then nothing arrives for 31 s
        pipeline.tick()
        [offline] = await sink.wait_for("trigger", rule="offline")
    assert offline["device"] == "boiler"


async def test_model_calls_are_bounded_in_flight(pipeline_config: AnalysisConfig) -> None:
    config = dataclasses.replace(pipeline_config, every_window=True, max_in_flight=2)
    # slow answers and a server that could take four at once: only the bound limits it
    async with OllamaSimulator(models=["llama3.2"], token_delay=0.005, parallel=4) as ollama:
        client = OllamaClient(ollama.url, max_in_flight=4, retry=RetryPolicy(attempts=1))
        model = OllamaModel(client, config)
        sink, clock = Collector(), Clock()
        async with AnalysisPipeline(config, sink=sink, model=model, clock=clock) as pipeline:
            drive(pipeline, clock, "boiler", range(7), shifted(set()))  # six windows at once
            await sink.wait_for("finding", 6, source="model")
            await pipeline.wait_idle()
        await client.aclose()
        assert ollama.counters.max_in_flight == 2


async def test_a_backlog_that_cannot_write_reports_the_window_and_keeps_analysing(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig, tmp_path: Path
) -> None:
    """Issue 12's audit: a full disk used to raise out of the ticker, ending the analysis
    without a word. The window is reported as dropped; later windows are analysed."""
    backlog = Backlog(tmp_path / "backlog.db", 100)
    db = backlog._db
    db.execute("PRAGMA query_only = 1")  # every write fails, as on a full disk
    sink, clock = Collector(), Clock()
    model = fast_model(ollama.url, pipeline_config)
    async with AnalysisPipeline(
        pipeline_config, sink=sink, model=model, clock=clock, backlog=backlog
    ) as pipeline:
        pipeline.add_device("boiler", ["p", "q"])
        drive(pipeline, clock, "boiler", range(7), shifted({5}))
        [dropped] = await sink.wait_for("backlog_dropped")
        assert "cannot write" in dropped["reason"] and "free disk space" in dropped["reason"]
        db.execute("PRAGMA query_only = 0")  # writable again
        drive(pipeline, clock, "boiler", range(7, 14), shifted({12}))
        [finding] = await sink.wait_for("finding")
        await pipeline.wait_idle()
        assert pipeline.stats()["backlog_dropped"] == 1
    await model.aclose()
    assert finding["source"] == "model"


def answer(summary: str, severity: str) -> str:
    return json.dumps(
        {
            "summary": summary,
            "suspected_causes": ["a sensor fault"],
            "recommended_actions": ["check the sensor"],
            "points": ["p"],
            "severity": severity,
        }
    )


async def test_a_critical_threshold_is_critical_whatever_the_model_rates_it(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig
) -> None:
    critical = ThresholdRule(point="p", above=70.0, severity="critical")
    config = dataclasses.replace(pipeline_config, thresholds=(critical,))
    ollama.inject("invalid_output", output=answer("p is fine.", "normal"), times=1, paths=CHAT)
    sink, clock = Collector(), Clock()
    model = fast_model(ollama.url, config)
    async with AnalysisPipeline(config, sink=sink, model=model, clock=clock) as pipeline:
        drive(pipeline, clock, "boiler", range(7), shifted({5}))
        [finding] = await sink.wait_for("finding", source="model")
        await pipeline.wait_idle()
        assert pipeline.stats()["severity_raised"] == 1
    await model.aclose()
    assert finding["severity"] == "critical" and finding["model_severity"] == "normal"
    assert finding["summary"] == "p is fine."  # the model's words stay, its rating does not


async def test_a_finding_that_invents_a_number_is_sent_back_once_then_flagged(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig
) -> None:
    invented = answer("p jumped to 123.4, far above normal.", "warning")
    ollama.inject("invalid_output", output=invented, times=2, paths=CHAT)
    sink, clock = Collector(), Clock()
    model = fast_model(ollama.url, pipeline_config)
    async with AnalysisPipeline(pipeline_config, sink=sink, model=model, clock=clock) as pipeline:
        drive(pipeline, clock, "boiler", range(7), shifted({5}))
        [finding] = await sink.wait_for("finding", source="model")
        await pipeline.wait_idle()
        assert pipeline.stats()["ungrounded"] == 1
    await model.aclose()
    assert chat_calls(ollama) == 2  # the repair named 123.4 as not in the window
    assert finding["ungrounded"] == ["123.4"] and finding["repaired"] is True


async def test_a_repaired_answer_that_quotes_the_window_is_not_flagged(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig
) -> None:
    invented = answer("p jumped to 123.4, far above normal.", "warning")
    ollama.inject("invalid_output", output=invented, times=1, paths=CHAT)
    ollama_answer = answer("p is far above its usual level.", "warning")
    ollama.inject("invalid_output", output=ollama_answer, times=1, paths=CHAT)
    sink, clock = Collector(), Clock()
    model = fast_model(ollama.url, pipeline_config)
    async with AnalysisPipeline(pipeline_config, sink=sink, model=model, clock=clock) as pipeline:
        drive(pipeline, clock, "boiler", range(7), shifted({5}))
        [finding] = await sink.wait_for("finding", source="model")
        await pipeline.wait_idle()
    await model.aclose()
    assert finding["ungrounded"] == [] and finding["repaired"] is True


async def test_every_window_honours_the_cooldown(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig
) -> None:
    config = dataclasses.replace(pipeline_config, every_window=True, cooldown_s=300.0)
    sink, clock = Collector(), Clock()
    model = fast_model(ollama.url, config)
    async with AnalysisPipeline(config, sink=sink, model=model, clock=clock) as pipeline:
        drive(pipeline, clock, "boiler", range(5), shifted(set()))  # windows 0-3 close
        await sink.wait_for("trigger", 4)
        await pipeline.wait_idle()
    await model.aclose()
    # windows 0-3, and window 4 judged as it was when the pipeline stopped
    assert [t["model_call"] for t in sink.of("trigger")] == [True, False, False, False, False]
    assert chat_calls(ollama) == 1


async def test_a_window_open_at_a_stop_is_judged_and_explained_after_the_restart(
    tmp_path: Path, pipeline_config: AnalysisConfig
) -> None:
    """Its readings left the spool already: at the stop the open window is judged as it
    is, a breach in it waits in the backlog, and its statistics finding says why."""
    critical = ThresholdRule(point="p", above=70.0, severity="critical")
    config = dataclasses.replace(pipeline_config, thresholds=(critical,))
    path = tmp_path / "analysis.db"
    async with OllamaSimulator(models=["llama3.2"], port=0) as gone:
        dead_url = gone.url
    sink, clock = Collector(), Clock()
    model = fast_model(dead_url, config)
    pipeline = AnalysisPipeline(
        config, sink=sink, model=model, clock=clock, backlog=Backlog(path, 9)
    )
    async with pipeline:
        for i in range(3):  # window 0, still open: 80 is past the critical 70
            pipeline.observe("boiler", T0 + i, {"p": 80.0})
    await model.aclose()
    [stopped] = sink.of("finding", source="statistics")
    assert stopped["severity"] == "critical" and "follows at the next start" in stopped["reason"]

    async with OllamaSimulator(models=["llama3.2"], port=0) as ollama:
        sink2 = Collector()
        model = fast_model(ollama.url, config)
        restarted = AnalysisPipeline(
            config, sink=sink2, model=model, clock=clock, backlog=Backlog(path, 9)
        )
        async with restarted:
            [found] = await sink2.wait_for("finding", source="model")
            await restarted.wait_idle()
        await model.aclose()
    assert found["window"] == {**stopped["window"], "seconds": 10.0}
    assert found["severity"] == "critical"


async def test_a_critical_rating_with_no_rule_fired_is_kept_a_warning(
    ollama: OllamaSimulator, pipeline_config: AnalysisConfig
) -> None:
    config = dataclasses.replace(pipeline_config, every_window=True)
    ollama.inject("invalid_output", output=answer("p looks odd.", "critical"), paths=CHAT)
    sink, clock = Collector(), Clock()
    model = fast_model(ollama.url, config)
    async with AnalysisPipeline(config, sink=sink, model=model, clock=clock) as pipeline:
        drive(pipeline, clock, "boiler", range(2), shifted(set()))  # window 0 closes
        [finding, *_] = await sink.wait_for("finding", source="model")
        await pipeline.wait_idle()
    await model.aclose()
    assert finding["severity"] == "warning" and finding["model_severity"] == "critical"


async def test_pauses_after_failed_calls_double_with_jitter_and_reset_on_an_answer() -> None:
    config = AnalysisConfig(retry_after_s=2.0)
    pipeline = AnalysisPipeline(config, sink=Collector(), model=None)
    loop = asyncio.get_running_loop()
    pauses = []
    for _ in range(8):
        pipeline._resume_at = 0.0
        before = loop.time()
        pipeline._unavailable("down")
        pauses.append(pipeline._resume_at - before)
    for n, pause in enumerate(pauses):  # 2, 4, 8, ... 60 at most, each +/-20 %
        expected = min(2.0 * 2**n, 60.0)
        assert 0.8 * expected - 0.01 <= pause <= min(1.2 * expected, 60.0) + 0.01, (n, pauses)
    # jittered: gateways that lost one shared Ollama do not come back in lockstep
    assert any(abs(p - min(2.0 * 2**n, 60.0)) > 1e-3 for n, p in enumerate(pauses[:5]))
    pipeline._available()
    pipeline._resume_at = 0.0
    before = loop.time()
    pipeline._unavailable("down again")
    assert pipeline._resume_at - before <= 2.4 + 0.01  # back to the first pause
