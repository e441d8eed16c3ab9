"""Edge analysis: windowed statistics, triggers, prompts, structured findings.

Readings go into ``AnalysisPipeline.observe`` (or the sans-IO ``Analyzer``); windows
that trigger a rule are explained by a local model (``OllamaModel``) as a validated
``Finding`` and handed to an async sink. See docs/ANALYSIS.md.
"""

from mcptool.analysis.analyzer import Analyzer, PointInfo, WindowReport
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
from mcptool.analysis.polls import analyse_poll, fan_out
from mcptool.analysis.prompting import Prompts
from mcptool.analysis.stats import DeviceWindow, PointStats, WindowStats
from mcptool.analysis.triggers import RULES, TriggerEngine, TriggerEvent, Usual

__all__ = [
    "FINDING_SCHEMA",
    "RULES",
    "SEVERITIES",
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
    "statistics_finding",
]
