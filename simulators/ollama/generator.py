"""The simulator's model: a load that is a delay, and deterministic answers.

It plugs into ``mcptool.serving`` as the llama.cpp generator does, so the simulator
shares the Ollama API (routes, checks, wire format, scheduling) with
``mcptool model serve`` and differs only here: answers seeded by the request (or scripted
by a hook or a ``--script`` rule, or a JSON value for ``format``, or tool calls),
``token_delay`` between pieces, and the faults that strike in the middle of a stream.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from mcptool.serving.generator import Done, Prompt, ToolCalls
from mcptool.serving.http import DropConnection
from mcptool.serving.scheduler import Shape
from mcptool.serving.wire import StreamError
from simulators.ollama.catalog import SimModel
from simulators.ollama.faults import Fault
from simulators.ollama.schema_values import value_for
from simulators.ollama.script import Scripted
from simulators.ollama.text import seeded, sentence, token_ids, tokenize
from simulators.ollama.tools import tool_answer, tool_calls

AnswerHook = Callable[[str, Mapping[str, Any]], str | None]
"""``(endpoint, request body) -> answer text``, or None for the simulator's own answer."""

MID_STREAM = ("error_line", "drop", "stall")
"""Faults that strike after ``after_chunks`` chunks (0: before the headers)."""


class Knobs(Protocol):
    """The simulator's settings, read at every request (they change while it runs)."""

    seed: int
    load_delay: float
    token_delay: float
    answer: AnswerHook | None
    tokens: tuple[int, int]


def prompt_text(kind: str, body: Mapping[str, Any]) -> str:
    """What the answer is seeded by: the prompt, or every message's content."""
    if kind == "generate":
        return str(body.get("prompt") or "")
    messages = body.get("messages") or ()
    return "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, Mapping))


async def strike(fault: Fault) -> None:
    """A mid-stream fault: an error line, a cut connection or silence."""
    if fault.kind == "error_line":
        raise StreamError(fault.message)
    if fault.kind == "drop":
        raise DropConnection
    if fault.seconds is None:
        await asyncio.Event().wait()  # until the client leaves (cancellation)
    else:
        await asyncio.sleep(fault.seconds)


class SimGenerator:
    """One simulated model (see the module's docstring)."""

    def __init__(self, knobs: Knobs, model: SimModel) -> None:
        self.knobs = knobs
        self.model = model

    async def load(self, shape: Shape) -> Shape:
        if self.knobs.load_delay > 0:
            await asyncio.sleep(self.knobs.load_delay)
        return Shape(shape.num_ctx or 4096)

    async def unload(self) -> None:
        """Nothing to free."""

    def answer(self, prompt: Prompt, text: str) -> list[str]:
        """The answer's pieces: scripted, a JSON value for ``format``, or seeded words."""
        fault, body, kind = prompt.tag, prompt.body, prompt.kind
        if isinstance(fault, Scripted):
            return tokenize(fault.text)
        if isinstance(fault, Fault) and fault.kind == "invalid_output":
            return tokenize(fault.output)
        if self.knobs.answer is not None:
            scripted = self.knobs.answer(kind, body)
            if scripted is not None:
                return tokenize(scripted)
        if kind == "chat" and body.get("tools"):
            return tokenize(tool_answer(body))
        fmt = body.get("format")
        rng = seeded(
            self.knobs.seed,
            self.model.name,
            kind,
            text,
            json.dumps(fmt, sort_keys=True),
            prompt.options.get("seed"),
        )
        if isinstance(fmt, dict):
            return tokenize(json.dumps(value_for(fmt, rng)))
        if fmt == "json":
            return tokenize(json.dumps({"answer": "".join(sentence(rng, *self.knobs.tokens))}))
        return sentence(rng, *self.knobs.tokens)

    async def generate(self, prompt: Prompt) -> AsyncIterator[str | ToolCalls | Done]:
        fault = prompt.tag
        mid = fault if isinstance(fault, Fault) and fault.kind in MID_STREAM else None
        if mid is not None and mid.after_chunks == 0:
            mid = None  # struck before the load (the simulator's _before_load)
        started = time.perf_counter_ns()
        text = prompt_text(prompt.kind, prompt.body)
        scripted = isinstance(fault, Scripted)
        calls = tool_calls(prompt.body) if prompt.kind == "chat" and not scripted else None
        tokens = [] if calls else self.answer(prompt, text)
        if calls:
            yield ToolCalls(calls)
        limit = prompt.options.get("num_predict")
        reason: Any = "stop"
        if isinstance(limit, int) and 0 <= limit < len(tokens):
            tokens, reason = tokens[:limit], "length"
        prompt_ids = token_ids(text)
        eval_started = time.perf_counter_ns()
        for index, token in enumerate(tokens):
            if mid is not None and index == mid.after_chunks:
                await strike(mid)
            await asyncio.sleep(self.knobs.token_delay)
            yield token
        if mid is not None and mid.after_chunks >= len(tokens):
            await strike(mid)
        ended = time.perf_counter_ns()
        context = [*prompt_ids, *token_ids("".join(tokens))] if prompt.kind == "generate" else None
        yield Done(
            reason,
            prompt_eval_count=len(prompt_ids) + 10,
            prompt_eval_duration=eval_started - started,
            eval_count=len(tokens),
            eval_duration=ended - eval_started,
            context=context,
        )

    def embed(self, texts: list[str], dimensions: int | None) -> tuple[list[list[float]], int]:
        """Seeded unit vectors, one a text, and the texts' token count."""
        dim = dimensions or self.model.embedding_length
        vectors = []
        for text in texts:
            rng = seeded(self.knobs.seed, self.model.name, "embed", text)
            values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
            norm = math.sqrt(sum(v * v for v in values)) or 1.0
            vectors.append([round(v / norm, 7) for v in values])
        return vectors, sum(len(token_ids(text)) for text in texts)
