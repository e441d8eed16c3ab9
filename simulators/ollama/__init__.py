"""A simulated Ollama API server: the real wire format, deterministic answers, faults.

``async with OllamaSimulator(models=["llama3.2"]) as sim:`` and point any Ollama client
(mcptool's, the official ``ollama`` package, curl) at ``sim.url``.
"""

from simulators.ollama.catalog import SimModel, canonical
from simulators.ollama.faults import Fault, FaultKind, FaultPlan
from simulators.ollama.findings import trigger_finding
from simulators.ollama.schema_values import value_for
from simulators.ollama.script import Script, load_script
from simulators.ollama.server import BUSY_MESSAGE, Counters, OllamaSimulator, rfc3339

__all__ = [
    "BUSY_MESSAGE",
    "Counters",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "OllamaSimulator",
    "Script",
    "SimModel",
    "canonical",
    "load_script",
    "rfc3339",
    "trigger_finding",
    "value_for",
]
