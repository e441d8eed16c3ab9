"""The embedded model (the ``local-model`` extra) behind the analysis: a real finding
from Qwen2.5-Coder-0.5B served in this process, on loopback only.

Without the extra it skips with the install hint; under CI it fails (CI installs it).
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

import pytest

from mcptool.analysis import AnalysisConfig, AnalysisPipeline, ThresholdRule
from mcptool.analysis.embedded import EmbeddedModel
from tests.analysis.conftest import Clock, Collector, drive, shifted
from tests.serving.test_model_serve import require_local_model

pytestmark = pytest.mark.slow


async def test_a_critical_window_gets_a_critical_finding_from_the_embedded_model(
    pipeline_config: AnalysisConfig,
) -> None:
    require_local_model()
    critical = ThresholdRule(point="p", above=70.0, severity="critical")
    config = dataclasses.replace(pipeline_config, thresholds=(critical,), num_predict=384)
    model = EmbeddedModel(config, threads=2)
    sink, clock = Collector(), Clock()
    try:
        async with AnalysisPipeline(config, sink=sink, model=model, clock=clock) as pipeline:
            pipeline.add_device("boiler", ["p"])
            drive(pipeline, clock, "boiler", range(7), shifted({5}))
            done = await sink.wait_for("finding", source="model", timeout=600)
            await pipeline.wait_idle()
        assert model.url is not None and urlsplit(model.url).hostname == "127.0.0.1"
    finally:
        await model.aclose()
    [finding] = done
    assert finding["model"] == "qwen2.5-coder:0.5b"
    assert finding["severity"] == "critical"  # the model's own rating may be lower
    assert finding["summary"] and set(finding["points"]) <= {"p"}
