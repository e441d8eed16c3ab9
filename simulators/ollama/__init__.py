"""A simulated Ollama API server: the real wire format, deterministic answers, faults.

``async with OllamaSimulator(models=["llama3.2"]) as sim:`` and point any Ollama client
(mcptool's, the official ``ollama`` package, curl) at ``sim.url``.
"""

from simulators.ollama.catalog import SimModel, canonical
from simulators.ollama.faults import Fault, FaultKind, FaultPlan
from simulators.ollama.schema_values import value_for
from simulators.ollama.server import BUSY_MESSAGE, Counters, OllamaSimulator, rfc3339

__all__ = [
    "BUSY_MESSAGE",
    "Counters",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "OllamaSimulator",
    "SimModel",
    "canonical",
    "rfc3339",
    "value_for",
]
