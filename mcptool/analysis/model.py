"""The model behind the analysis: one call with messages and a JSON schema.

The pipeline needs only ``ask``; ``OllamaModel`` puts it on mcptool's Ollama client and
sorts Ollama's typed errors into two kinds the pipeline acts on: ``ModelUnavailable``
(busy, down, timed out, not pulled: keep the window and try again later) and
``ModelRejected`` (the request itself is wrong: retrying the same call cannot help).

The severity of the window being asked about travels beside the call, in the context
variable ``WINDOW_SEVERITY`` (``asking_about``), not as an argument of ``ask``: a router
sends critical windows to a bigger model first, and the wrappers between the pipeline and
the router (a worker's tracing span, a test's fake) pass it on without knowing of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "WINDOW_SEVERITY",
    "AnalysisModel",
    "ModelAnswer",
    "ModelRejected",
    "ModelUnavailable",
    "asking_about",
]

WINDOW_SEVERITY: ContextVar[str | None] = ContextVar("window_severity", default=None)
"""The worst trigger severity of the window the current ``ask`` is about (None: unknown)."""


@contextmanager
def asking_about(severity: str | None) -> Iterator[None]:
    """``with asking_about("critical"): await model.ask(...)``: the call is about a window
    of that severity (a router reads it; a single model ignores it)."""
    token = WINDOW_SEVERITY.set(severity)
    try:
        yield
    finally:
        WINDOW_SEVERITY.reset(token)


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
