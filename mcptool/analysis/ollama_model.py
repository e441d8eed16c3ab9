"""The analysis model on mcptool's Ollama client.

The schema goes to Ollama as ``format`` (Ollama turns it into a grammar, so even a small
model answers in shape), but through the client's ``extra`` pass-through rather than its
``format`` argument: the pipeline validates and repairs the answer itself, with a repair
prompt the user can edit and that names the device's points, and knows when a finding was
repaired. Ollama's typed errors are sorted into "try later" and "this request is wrong".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcptool.analysis.config import AnalysisConfig
from mcptool.analysis.model import ModelAnswer, ModelRejected, ModelUnavailable
from mcptool.ollama import (
    CircuitOpen,
    ModelNotFound,
    OllamaBackpressure,
    OllamaBusy,
    OllamaClient,
    OllamaError,
    OllamaHTTPError,
    OllamaProtocolError,
    OllamaStreamError,
    OllamaTimeout,
    OllamaUnreachable,
    Result,
    Timeouts,
)

__all__ = ["OllamaModel"]

_LATER = (
    CircuitOpen,
    ModelNotFound,
    OllamaBackpressure,
    OllamaBusy,
    OllamaProtocolError,
    OllamaStreamError,
    OllamaTimeout,
    OllamaUnreachable,
)


class OllamaModel:
    """``ask`` = one non-streamed chat call with the finding schema as ``format``."""

    def __init__(self, client: OllamaClient, config: AnalysisConfig) -> None:
        self.client = client
        self.name = config.model
        self.keep_alive = config.keep_alive
        options: dict[str, Any] = {"temperature": config.temperature}
        if config.seed is not None:
            options["seed"] = config.seed
        if config.num_ctx is not None:
            options["num_ctx"] = config.num_ctx
        if config.num_predict is not None:
            options["num_predict"] = config.num_predict
        self.options = options

    @classmethod
    def connect(cls, url: str | None, config: AnalysisConfig) -> OllamaModel:
        """A model with its own client for ``url`` (``aclose`` it when done)."""
        timeouts = Timeouts(total=config.request_timeout_s)
        return cls(OllamaClient(url, timeouts=timeouts), config)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def preload(self) -> None:
        """Load the model into memory, kept for ``keep_alive``."""
        await self.client.preload(self.name, self.keep_alive)

    async def ask(
        self, messages: Sequence[Mapping[str, str]], schema: Mapping[str, Any]
    ) -> ModelAnswer:
        try:
            result = await self.client.chat(
                self.name,
                list(messages),  # type: ignore[arg-type]
                options=self.options,
                keep_alive=self.keep_alive,
                extra={"format": dict(schema)},
                stream=False,
            )
        except _LATER as exc:
            raise ModelUnavailable(str(exc)) from exc
        except OllamaHTTPError as exc:
            if exc.retryable:
                raise ModelUnavailable(str(exc)) from exc
            raise ModelRejected(str(exc)) from exc
        except OllamaError as exc:
            raise ModelRejected(str(exc)) from exc
        return ModelAnswer(result.text, result.model or self.name, timings(result))


def timings(result: Result) -> dict[str, float]:
    """The call's figures in milliseconds and tokens (Ollama reports nanoseconds)."""
    m = result.metrics
    return {
        "total_ms": round(m.total_s * 1000, 1),
        "load_ms": round(m.load_s * 1000, 1),
        "prompt_eval_ms": round(m.prompt_eval_s * 1000, 1),
        "eval_ms": round(m.eval_s * 1000, 1),
        "prompt_tokens": m.prompt_eval_count,
        "eval_tokens": m.eval_count,
        "attempts": m.attempts,
    }
