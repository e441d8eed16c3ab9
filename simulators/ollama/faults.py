"""Faults the Ollama simulator can inject, chosen per request while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FaultKind = Literal[
    "status", "disconnect", "error_line", "drop", "stall", "invalid_output", "blank_lines"
]

GENERATION_PATHS = ("/api/generate", "/api/chat")


@dataclass(slots=True)
class Fault:
    """One fault, applied to the next ``times`` matching requests (None: to all of them).

    kinds:
      - ``status``: answer ``status`` with ``{"error": message}`` before any chunk.
      - ``disconnect``: close the connection without any answer.
      - ``error_line``: send ``after_chunks`` chunks, then an ``{"error": message}`` line
        (status 200, no done chunk), as Ollama does when a runner fails mid-stream.
      - ``drop``: send ``after_chunks`` chunks, then cut the TCP connection.
      - ``stall``: go silent for ``seconds`` (None: until the client leaves) after
        ``after_chunks`` chunks; 0 stalls before the headers, like a model load.
      - ``invalid_output``: answer with ``output`` instead of the generated text (to test
        structured-output validation and repair).
      - ``blank_lines``: put an empty line before every NDJSON line (Ollama does not; some
        proxies do, and a client should cope).
    """

    kind: FaultKind
    status: int = 500
    message: str = "an internal error occurred"
    after_chunks: int = 0
    seconds: float | None = None
    times: int | None = 1
    paths: tuple[str, ...] = GENERATION_PATHS
    model: str | None = None
    output: str = "Sure! Here is the answer you asked for."
    fired: int = 0

    def matches(self, path: str, model: str | None) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if path not in self.paths:
            return False
        return self.model is None or self.model == model


class FaultPlan:
    """Faults in the order they were added; the first one that matches a request fires."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def take(self, path: str, model: str | None) -> Fault | None:
        for fault in self._faults:
            if fault.matches(path, model):
                fault.fired += 1
                return fault
        return None

    def __len__(self) -> int:
        return len(self._faults)
