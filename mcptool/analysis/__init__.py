"""Edge analysis: windowed statistics, triggers, prompts, structured findings.

Readings go into ``AnalysisPipeline.observe`` (or the sans-IO ``Analyzer``); windows
that trigger a rule are explained by a local model (``OllamaModel``) as a validated
``Finding`` and handed to an async sink. See docs/ANALYSIS.md.

The names below are imported on first use: ``from mcptool.analysis.config import ...``
(which the gateway's config parsing needs, through ``mcptool.edge``) must not load the
pipeline, the Ollama client and httpx into a gateway that has no ``[analysis]``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcptool.analysis.analyzer import STATE_VERSION, Analyzer, PointInfo, WindowReport
    from mcptool.analysis.backlog import Backlog, BacklogError, Job
    from mcptool.analysis.config import AnalysisConfig, AnalysisConfigError, ThresholdRule
    from mcptool.analysis.findings import (
        FINDING_SCHEMA,
        SEVERITIES,
        Finding,
        InvalidAnswer,
        finding_schema,
        parse_answer,
        statistics_finding,
    )
    from mcptool.analysis.hub import HubAnalysis
    from mcptool.analysis.metrics import AnalysisCollector
    from mcptool.analysis.model import AnalysisModel, ModelAnswer, ModelRejected, ModelUnavailable
    from mcptool.analysis.ollama_model import OllamaModel
    from mcptool.analysis.pipeline import AnalysisPipeline, Sink
    from mcptool.analysis.polls import analyse_poll, fan_out, points_of
    from mcptool.analysis.prompting import Prompts
    from mcptool.analysis.stats import DeviceWindow, PointStats, WindowStats
    from mcptool.analysis.triggers import RULES, TriggerEngine, TriggerEvent, Usual

_WHERE = {
    "STATE_VERSION": "mcptool.analysis.analyzer",
    "Analyzer": "mcptool.analysis.analyzer",
    "PointInfo": "mcptool.analysis.analyzer",
    "WindowReport": "mcptool.analysis.analyzer",
    "Backlog": "mcptool.analysis.backlog",
    "BacklogError": "mcptool.analysis.backlog",
    "Job": "mcptool.analysis.backlog",
    "AnalysisConfig": "mcptool.analysis.config",
    "AnalysisConfigError": "mcptool.analysis.config",
    "ThresholdRule": "mcptool.analysis.config",
    "FINDING_SCHEMA": "mcptool.analysis.findings",
    "SEVERITIES": "mcptool.analysis.findings",
    "Finding": "mcptool.analysis.findings",
    "InvalidAnswer": "mcptool.analysis.findings",
    "finding_schema": "mcptool.analysis.findings",
    "parse_answer": "mcptool.analysis.findings",
    "statistics_finding": "mcptool.analysis.findings",
    "HubAnalysis": "mcptool.analysis.hub",
    "AnalysisCollector": "mcptool.analysis.metrics",
    "AnalysisModel": "mcptool.analysis.model",
    "ModelAnswer": "mcptool.analysis.model",
    "ModelRejected": "mcptool.analysis.model",
    "ModelUnavailable": "mcptool.analysis.model",
    "OllamaModel": "mcptool.analysis.ollama_model",
    "AnalysisPipeline": "mcptool.analysis.pipeline",
    "Sink": "mcptool.analysis.pipeline",
    "analyse_poll": "mcptool.analysis.polls",
    "fan_out": "mcptool.analysis.polls",
    "points_of": "mcptool.analysis.polls",
    "Prompts": "mcptool.analysis.prompting",
    "DeviceWindow": "mcptool.analysis.stats",
    "PointStats": "mcptool.analysis.stats",
    "WindowStats": "mcptool.analysis.stats",
    "RULES": "mcptool.analysis.triggers",
    "TriggerEngine": "mcptool.analysis.triggers",
    "TriggerEvent": "mcptool.analysis.triggers",
    "Usual": "mcptool.analysis.triggers",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mcptool.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "FINDING_SCHEMA",
    "RULES",
    "SEVERITIES",
    "STATE_VERSION",
    "AnalysisCollector",
    "AnalysisConfig",
    "AnalysisConfigError",
    "AnalysisModel",
    "AnalysisPipeline",
    "Analyzer",
    "Backlog",
    "BacklogError",
    "DeviceWindow",
    "Finding",
    "HubAnalysis",
    "InvalidAnswer",
    "Job",
    "ModelAnswer",
    "ModelRejected",
    "ModelUnavailable",
    "OllamaModel",
    "PointInfo",
    "PointStats",
    "Prompts",
    "Sink",
    "ThresholdRule",
    "TriggerEngine",
    "TriggerEvent",
    "Usual",
    "WindowReport",
    "WindowStats",
    "analyse_poll",
    "fan_out",
    "finding_schema",
    "parse_answer",
    "points_of",
    "statistics_finding",
]
