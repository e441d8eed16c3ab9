"""One streamed answer put together: chunks in, the caller's text, thinking, tool calls
and the final :class:`~mcptool.ollama.models.Result` out. No IO; generate and chat differ
only in where a chunk keeps its text."""

from __future__ import annotations

from typing import Any

from mcptool.ollama.models import Chunk, Metrics, Result


class Answer:
    def __init__(self, model: str, *, chat: bool) -> None:
        self.model = model
        self.chat = chat
        self.chunks = 0
        self._texts: list[str] = []
        self._thinking: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []

    @property
    def partial(self) -> str:
        """The text so far (what a caller saw before a stream broke)."""
        return "".join(self._texts)

    def add(self, data: dict[str, Any]) -> None:
        """Count one chunk and keep its pieces."""
        self.chunks += 1
        if self.chat:
            message = data.get("message") or {}
            text = message.get("content", "")
            if message.get("tool_calls"):
                self.tool_calls.extend(message["tool_calls"])
            thinking = message.get("thinking")
        else:
            text = data.get("response", "")
            thinking = data.get("thinking")
        if text:
            self._texts.append(text)
        if thinking:
            self._thinking.append(thinking)

    def chunk(self, data: dict[str, Any]) -> Chunk:
        """The caller's view of one chunk."""
        if self.chat:
            message = data.get("message") or {}
            return Chunk(
                message.get("content", ""),
                bool(data.get("done")),
                data,
                message.get("thinking", ""),
            )
        return Chunk(
            data.get("response", ""), bool(data.get("done")), data, data.get("thinking", "")
        )

    def result(
        self, final: dict[str, Any], *, queue_wait_s: float, first_chunk_s: float, attempts: int
    ) -> Result:
        """The whole answer, from the final chunk (``done``) and what came before it."""
        metrics = Metrics.from_final(final)
        metrics.queue_wait_s = queue_wait_s
        metrics.first_chunk_s = first_chunk_s
        metrics.attempts = attempts
        return Result(
            model=final.get("model", self.model),
            text="".join(self._texts),
            done_reason=final.get("done_reason", ""),
            metrics=metrics,
            created_at=final.get("created_at", ""),
            context=final.get("context"),
            thinking="".join(self._thinking),
            raw=final,
            tool_calls=self.tool_calls,
        )
