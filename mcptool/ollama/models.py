"""Typed results of the Ollama client: answers, per-call figures, models."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

_NS = 1e-9


class Message(TypedDict, total=False):
    """A chat message as Ollama takes it (``images``, ``tool_calls`` pass through)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    images: list[str]
    tool_calls: list[dict[str, Any]]


@dataclass(slots=True)
class Metrics:
    """Figures of one call, in seconds (Ollama reports nanoseconds; converted here).

    ``queue_wait_s`` is time spent in this client's own wait queue; ``first_chunk_s`` is
    from sending to the first chunk (queue at the server, load and prompt evaluation).
    """

    total_s: float = 0.0
    load_s: float = 0.0
    prompt_eval_count: int = 0
    prompt_eval_s: float = 0.0
    eval_count: int = 0
    eval_s: float = 0.0
    queue_wait_s: float = 0.0
    first_chunk_s: float = 0.0
    wall_s: float = 0.0
    attempts: int = 1

    @property
    def tokens_per_s(self) -> float:
        return self.eval_count / self.eval_s if self.eval_s > 0 else 0.0

    @property
    def prompt_tokens_per_s(self) -> float:
        return self.prompt_eval_count / self.prompt_eval_s if self.prompt_eval_s > 0 else 0.0

    @classmethod
    def from_final(cls, final: dict[str, Any]) -> Metrics:
        """From Ollama's final chunk (missing metrics are zero: Ollama omits zeros)."""
        return cls(
            total_s=final.get("total_duration", 0) * _NS,
            load_s=final.get("load_duration", 0) * _NS,
            prompt_eval_count=final.get("prompt_eval_count", 0),
            prompt_eval_s=final.get("prompt_eval_duration", 0) * _NS,
            eval_count=final.get("eval_count", 0),
            eval_s=final.get("eval_duration", 0) * _NS,
        )

    def as_dict(self) -> dict[str, float]:
        out = asdict(self)
        out["tokens_per_s"] = self.tokens_per_s
        out["prompt_tokens_per_s"] = self.prompt_tokens_per_s
        return out


@dataclass(slots=True)
class Chunk:
    """One streamed piece: ``text`` (response or message content), and ``raw`` as sent."""

    text: str
    done: bool
    raw: dict[str, Any]
    thinking: str = ""


@dataclass(slots=True)
class Result:
    """A finished generate or chat call.

    ``text`` is the whole answer; ``data`` is the parsed JSON when ``format`` was given
    (validated against the schema when it was one).
    """

    model: str
    text: str
    done_reason: str
    metrics: Metrics
    created_at: str = ""
    context: list[int] | None = None
    thinking: str = ""
    data: Any = None
    raw: dict[str, Any] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def message(self) -> Message:
        """The answer as a chat message, ready to append to the conversation."""
        message: Message = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return message

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "text": self.text,
            "done_reason": self.done_reason,
            "created_at": self.created_at,
            "data": self.data,
            "metrics": self.metrics.as_dict(),
        }


@dataclass(slots=True)
class ModelInfo:
    """A model from /api/tags (pulled) or /api/ps (loaded; ``expires_at`` is set)."""

    name: str
    size: int = 0
    digest: str = ""
    modified_at: str = ""
    family: str = ""
    parameter_size: str = ""
    quantization_level: str = ""
    expires_at: str = ""
    size_vram: int = 0
    context_length: int = 0

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ModelInfo:
        details = data.get("details") or {}
        return cls(
            name=data.get("model") or data.get("name", ""),
            size=int(data.get("size", 0) or 0),
            digest=data.get("digest", ""),
            modified_at=data.get("modified_at", ""),
            family=details.get("family", ""),
            parameter_size=details.get("parameter_size", ""),
            quantization_level=details.get("quantization_level", ""),
            expires_at=data.get("expires_at", ""),
            size_vram=int(data.get("size_vram", 0) or 0),
            context_length=int(data.get("context_length", 0) or 0),
        )


@dataclass(slots=True)
class Embeddings:
    model: str
    vectors: list[list[float]]
    metrics: Metrics
