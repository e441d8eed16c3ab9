"""The model behind the analysis: one call with messages and a JSON schema.

The pipeline needs only ``ask``; ``OllamaModel`` puts it on mcptool's Ollama client and
sorts Ollama's typed errors into two kinds the pipeline acts on: ``ModelUnavailable``
(busy, down, timed out, not pulled: keep the window and try again later) and
``ModelRejected`` (the request itself is wrong: retrying the same call cannot help).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["AnalysisModel", "ModelAnswer", "ModelRejected", "ModelUnavailable"]


@dataclass(frozen=True, slots=True)
class ModelAnswer:
    """The raw answer text, the model that gave it, and its timings in milliseconds."""

    text: str
    model: str
    timings: Mapping[str, float] = field(default_factory=dict)


class ModelUnavailable(Exception):
    """The model cannot answer now (busy, unreachable, timed out, not pulled)."""


class ModelRejected(Exception):
    """The model refused this request (bad request): asking again would not help."""


class AnalysisModel(Protocol):
    name: str

    async def ask(
        self, messages: Sequence[Mapping[str, str]], schema: Mapping[str, Any]
    ) -> ModelAnswer: ...
