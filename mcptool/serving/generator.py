"""What a model server needs from whatever produces the text: the seam of ``serving``.

The Ollama API (``serving.ollama_api``) owns the wire, the queue and keep-alive; a
:class:`Generator` owns a model: it loads it with a :class:`Shape`, frees it, and turns
one :class:`Prompt` into text pieces (and :class:`ToolCalls`) and then one :class:`Done`.
The llama.cpp one is ``serving.llama``; the Ollama simulator has a seeded one; tests plug
in a scripted one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from mcptool.serving.scheduler import Shape


@dataclass(frozen=True, slots=True)
class Prompt:
    """One generation, as Ollama's generate and chat bodies ask for it."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    """Chat messages, put through the model's chat template: role and content, and as
    Ollama has them an assistant's ``tool_calls`` and a tool result's ``tool_name``."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    """The tools a chat offers (Ollama's ``tools``): the model may answer with
    :class:`ToolCalls`."""
    raw: str | None = None
    """Generate with ``raw: true``: the prompt as it is, no template."""
    format: str | dict[str, Any] | None = None
    """``"json"``, a JSON schema, or None."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Ollama's sampling options (temperature, seed, num_predict, top_k, stop, ...)."""
    kind: Literal["generate", "chat"] = "chat"
    """The endpoint that asked."""
    body: Mapping[str, Any] = field(default_factory=dict)
    """The request as it came, for a generator that answers from more than the messages
    (the simulator's tool calls and scripted answers)."""
    tag: Any = None
    """What the server's ``screen`` step attached to this request (the simulator: the
    fault it drew for it)."""


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """Tool calls of a chat answer (Ollama's ``message.tool_calls``), sent as one chunk."""

    calls: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Done:
    """The end of a generation, with the counts Ollama reports (durations in ns)."""

    reason: Literal["stop", "length"]
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    context: list[int] | None = None
    """Token ids of prompt and answer, for generate's ``context`` (None: not sent)."""


class Generator(Protocol):
    async def load(self, shape: Shape) -> Shape:
        """Load the model (or reload it with another shape); return the shape it got."""
        ...

    async def unload(self) -> None:
        """Free the model's memory; the next :meth:`load` loads it again."""
        ...

    def generate(self, prompt: Prompt) -> AsyncIterator[str | ToolCalls | Done]:
        """Text pieces as they come, then one :class:`Done`; leaving early stops it."""
        ...
