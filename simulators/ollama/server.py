"""An Ollama API server that answers like the real one, deterministically.

Wire format (see FIELD-NOTES): NDJSON chunks with no blank lines, a final ``done`` chunk
with ``done_reason``, nanosecond durations (zero ones omitted) and ``context`` on
generate; ``stream: false`` answers one object; errors are ``{"error": ...}`` with
Ollama's statuses and texts; an error after the first chunk is a last ``{"error"}``
line under status 200. Headers leave with the first chunk, so a model load, a queue
wait and a stall before the first token all look like silence to a client, as they do
with a real Ollama.

Scheduling follows Ollama's: ``parallel`` requests per model at a time, ``queue``
requests waiting in all (503 "server busy" beyond it), a cold load on the first request
to a model (``load_delay``), the model kept loaded for ``keep_alive`` (default 5m, 0
unloads after the request) and a load aborted when its client leaves.

The HTTP server, the wire format and the scheduling are ``mcptool.serving``'s, shared
with ``mcptool model serve``: the simulator differs only in where answers come from
(seeded text, schema values, faults) and in what a load is (``load_delay``).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcptool.serving.http import DropConnection, HTTPServer, Request, Response
from mcptool.serving.scheduler import ModelSlots, Scheduler, SchedulingCounters, Shape, Ticket
from mcptool.serving.wire import (
    BUSY_MESSAGE,
    FOREVER_STAMP,
    NDJSON,
    ApiError,
    StreamError,
    check_format,
    collect,
    dump,
    error,
    keep_alive_seconds,
    messages_of,
    model_name,
    ndjson,
    options_of,
    read_body,
    rfc3339,
)
from simulators.ollama.catalog import SimModel, canonical
from simulators.ollama.faults import Fault, FaultKind, FaultPlan
from simulators.ollama.schema_values import value_for
from simulators.ollama.text import seeded, sentence, token_ids, tokenize
from simulators.ollama.tools import tool_answer, tool_calls

__all__ = ["BUSY_MESSAGE", "Counters", "OllamaSimulator", "keep_alive_seconds", "rfc3339"]

AnswerHook = Callable[[str, Mapping[str, Any]], str | None]
"""``(endpoint, request body) -> answer text``, or None for the simulator's own answer."""


@dataclass
class Counters(SchedulingCounters):
    """What the simulator saw: tests assert on these instead of on timing."""

    requests: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    generations: int = 0
    completed: int = 0
    cancelled: int = 0
    faults_fired: int = 0


class OllamaSimulator:
    """A deterministic Ollama on loopback.

    ``async with OllamaSimulator(models=["llama3.2"]) as sim:`` then point any client
    at ``sim.url``. Change ``load_delay``, ``token_delay``, models and faults while it
    runs; read ``sim.counters``.
    """

    def __init__(
        self,
        models: Iterable[str | SimModel] = ("llama3.2",),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        load_delay: float = 0.0,
        token_delay: float = 0.0,
        parallel: int = 1,
        queue: int = 512,
        version: str = "0.12.6",
        answer: AnswerHook | None = None,
        tokens: tuple[int, int] = (12, 32),
    ) -> None:
        self.counters = Counters()
        self._scheduler = Scheduler(self.counters, parallel=parallel, queue=queue)
        self.seed = seed
        self.load_delay = load_delay
        self.token_delay = token_delay
        self.version = version
        self.answer = answer
        self.tokens = tokens
        self.faults = FaultPlan()
        self._models: dict[str, ModelSlots[SimModel]] = {}
        self._modified = time.time_ns()
        for model in models:
            self.add_model(model)
        self._http = HTTPServer(self._handle, host, port)
        self._routes: dict[tuple[str, str], Callable[[Request], Any]] = {
            ("GET", "/"): self._root,
            ("HEAD", "/"): self._root,
            ("GET", "/api/version"): self._version,
            ("HEAD", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("HEAD", "/api/tags"): self._tags,
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/show"): self._show,
            ("POST", "/api/generate"): self._generate,
            ("POST", "/api/chat"): self._chat,
            ("POST", "/api/embed"): self._embed,
            ("POST", "/api/embeddings"): self._embeddings,
        }

    # -- life cycle ----------------------------------------------------------------------
    async def start(self) -> OllamaSimulator:
        await self._http.start()
        return self

    async def stop(self) -> None:
        await self._http.stop()

    async def __aenter__(self) -> OllamaSimulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def host(self) -> str:
        return self._http.host

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def connections(self) -> int:
        """Open client connections (pooled keep-alive ones included)."""
        return self._http.connections

    @property
    def connections_accepted(self) -> int:
        """Connections accepted since start (a pooling client opens few)."""
        return self._http.accepted

    # -- control while running -----------------------------------------------------------
    def add_model(self, model: str | SimModel) -> SimModel:
        sim_model = model if isinstance(model, SimModel) else SimModel.named(model)
        self._models[sim_model.name] = self._scheduler.slots_for(sim_model)
        return sim_model

    def remove_model(self, name: str) -> None:
        self._models.pop(canonical(name), None)

    @property
    def parallel(self) -> int:
        return self._scheduler.parallel

    @property
    def queue(self) -> int:
        return self._scheduler.queue

    @queue.setter
    def queue(self, value: int) -> None:
        self._scheduler.queue = value

    @property
    def models(self) -> list[str]:
        return list(self._models)

    def is_loaded(self, name: str) -> bool:
        state = self._models.get(canonical(name))
        return state is not None and state.loaded(self._now())

    def inject(self, kind: FaultKind, **options: Any) -> Fault:
        """Add a fault (see :class:`Fault`); it fires on the next matching request(s)."""
        return self.faults.add(Fault(kind, **options))

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- plumbing ------------------------------------------------------------------------
    def _now(self) -> float:
        return self._scheduler.now()

    async def _handle(self, request: Request) -> Response | None:
        self.counters.requests += 1
        self.counters.by_path[request.path] += 1
        route = self._routes.get((request.method, request.path))
        if route is None:
            response: Response | None = Response(404, b"404 page not found", "text/plain")
        else:
            try:
                response = await route(request)
            except ApiError as reply:
                response = error(reply.status, reply.message)
        if response is not None:
            self.counters.by_status[response.status] += 1
        return response

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        return read_body(request)

    def _state(self, body: Mapping[str, Any]) -> ModelSlots[SimModel]:
        name = model_name(body)
        state = self._models.get(canonical(name))
        if state is None:
            raise ApiError(404, f"model '{name}' not found")
        return state

    # -- simple endpoints ----------------------------------------------------------------
    async def _root(self, request: Request) -> Response:
        return Response(200, b"Ollama is running", "text/plain; charset=utf-8")

    async def _version(self, request: Request) -> Response:
        return Response(200, dump({"version": self.version}))

    async def _tags(self, request: Request) -> Response:
        models = [
            {
                "name": s.model.name,
                "model": s.model.name,
                "modified_at": rfc3339(self._modified),
                "size": s.model.size,
                "digest": s.model.digest,
                "details": s.model.details(),
            }
            for s in self._models.values()
        ]
        return Response(200, dump({"models": models}))

    async def _ps(self, request: Request) -> Response:
        now = self._now()
        models = []
        for s in self._models.values():
            if not s.loaded(now):
                continue
            expires = FOREVER_STAMP if s.expires == math.inf else rfc3339(int(s.expires_wall * 1e9))
            models.append(
                {
                    "name": s.model.name,
                    "model": s.model.name,
                    "size": s.model.size,
                    "digest": s.model.digest,
                    "details": s.model.details(),
                    "expires_at": expires,
                    "size_vram": s.model.size,
                    "context_length": s.shape.num_ctx or 4096,
                }
            )
        return Response(200, dump({"models": models}))

    async def _show(self, request: Request) -> Response:
        state = self._state(self._body(request))
        m = state.model
        info = {
            "general.architecture": m.family,
            "general.basename": m.name.split(":")[0],
            "general.parameter_count": int(
                float(m.parameter_size[:-1]) * (1e9 if m.parameter_size.endswith("B") else 1e6)
            ),
            f"{m.family}.context_length": m.context_length,
            f"{m.family}.embedding_length": m.embedding_length,
        }
        return Response(
            200,
            dump(
                {
                    "license": "simulated model: no license",
                    "modelfile": f'# Modelfile generated by "ollama show"\nFROM {m.name}\n',
                    "parameters": 'stop                           "<|eot_id|>"',
                    "template": "{{ .Prompt }}",
                    "details": m.details(),
                    "model_info": info,
                    "capabilities": m.capabilities,
                    "modified_at": rfc3339(self._modified),
                }
            ),
        )

    # -- scheduling (mcptool.serving.scheduler; a load here is a delay) ----------------
    def _admit(self, state: ModelSlots[SimModel]) -> Ticket:
        return self._scheduler.admit(state)

    async def _load(self, state: ModelSlots[SimModel], keep_alive: float, num_ctx: int) -> float:
        return await self._scheduler.load(state, keep_alive, Shape(num_ctx), self._delay_load)

    async def _delay_load(self, shape: Shape) -> Shape:
        if self.load_delay > 0:
            await asyncio.sleep(self.load_delay)
        return Shape(shape.num_ctx or 4096)

    def _touch(self, state: ModelSlots[SimModel], keep_alive: float) -> None:
        self._scheduler.touch(state, keep_alive)

    def _unload(self, state: ModelSlots[SimModel]) -> None:
        self._scheduler.unload(state)

    # -- generation ----------------------------------------------------------------------
    async def _generate(self, request: Request) -> Response | None:
        return await self._generation(request, "generate")

    async def _chat(self, request: Request) -> Response | None:
        return await self._generation(request, "chat")

    async def _generation(self, request: Request, kind: str) -> Response | None:
        started = time.perf_counter_ns()
        body = self._body(request)
        state = self._state(body)
        name = body["model"]
        check_format(body.get("format"))
        if state.model.embedding_only:
            raise ApiError(400, f'"{name}" does not support {kind}')
        options = options_of(body)
        keep_alive = keep_alive_seconds(body.get("keep_alive"))
        if kind == "generate":
            prompt = body.get("prompt") or ""
            empty = not prompt and not body.get("images")
        else:
            messages = messages_of(body)
            prompt = "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
            empty = not messages
        fault = self.faults.take(request.path, state.model.name)
        if fault is not None:
            self.counters.faults_fired += 1
            if fault.kind == "status":
                raise ApiError(fault.status, fault.message)
            if fault.kind == "disconnect":
                return None
        if empty:
            return await self._load_or_unload(state, kind, name, keep_alive, options, started)
        ticket = self._admit(state)
        stream = body.get("stream", True) is not False
        chunks = self._chunks(
            kind, body, state, prompt, keep_alive, options, fault, started, ticket
        )
        if stream:
            blank = fault is not None and fault.kind == "blank_lines"
            return Response(
                200, content_type=NDJSON, stream=ndjson(chunks, ticket.leave, blank=blank)
            )
        return await collect(kind, chunks, ticket.leave)

    async def _load_or_unload(
        self,
        state: ModelSlots[SimModel],
        kind: str,
        name: str,
        keep_alive: float,
        options: Mapping[str, Any],
        started: int,
    ) -> Response:
        if keep_alive == 0:
            self._unload(state)
            reason = "unload"
        else:
            ticket = self._admit(state)
            try:
                await self._load(state, keep_alive, int(options.get("num_ctx") or 0))
            finally:
                ticket.leave()
            self._touch(state, keep_alive)
            reason = "load"
        answer: dict[str, Any] = {"model": name, "created_at": rfc3339()}
        if kind == "generate":
            answer["response"] = ""
        else:
            answer["message"] = {"role": "assistant", "content": ""}
        answer.update(done=True, done_reason=reason)
        return Response(200, dump(answer))

    def _answer(
        self, kind: str, body: Mapping[str, Any], prompt: str, fault: Fault | None
    ) -> list[str]:
        """The answer's tokens: scripted, a JSON value for ``format``, or seeded words."""
        if fault is not None and fault.kind == "invalid_output":
            return tokenize(fault.output)
        if self.answer is not None:
            scripted = self.answer(kind, body)
            if scripted is not None:
                return tokenize(scripted)
        if kind == "chat" and body.get("tools"):
            return tokenize(tool_answer(body))
        options = body.get("options") or {}
        fmt = body.get("format")
        rng = seeded(
            self.seed,
            canonical(body["model"]),
            kind,
            prompt,
            json.dumps(fmt, sort_keys=True),
            options.get("seed"),
        )
        if isinstance(fmt, dict):
            return tokenize(json.dumps(value_for(fmt, rng)))
        if fmt == "json":
            return tokenize(json.dumps({"answer": "".join(sentence(rng, *self.tokens))}))
        return sentence(rng, *self.tokens)

    async def _chunks(
        self,
        kind: str,
        body: Mapping[str, Any],
        state: ModelSlots[SimModel],
        prompt: str,
        keep_alive: float,
        options: Mapping[str, Any],
        fault: Fault | None,
        started: int,
        ticket: Ticket,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object of one answer, the final ``done`` one included."""
        name = body["model"]
        self.counters.generations += 1
        mid_stream = fault if fault is not None and fault.kind in _MID_STREAM else None
        try:
            try:
                if mid_stream is not None and mid_stream.after_chunks == 0:
                    await self._fault_mid_stream(mid_stream)
                    mid_stream = None
                load_s = await self._load(state, keep_alive, int(options.get("num_ctx") or 0))
            except BaseException:
                ticket.leave()
                raise
            await self._scheduler.acquire(state, ticket)
            try:
                prompt_started = time.perf_counter_ns()
                calls = tool_calls(body) if kind == "chat" else None
                tokens = [] if calls else self._answer(kind, body, prompt, fault)
                if calls:
                    yield {
                        "model": name,
                        "created_at": rfc3339(),
                        "message": {"role": "assistant", "content": "", "tool_calls": calls},
                        "done": False,
                    }
                limit = options.get("num_predict")
                reason = "stop"
                if isinstance(limit, int) and 0 <= limit < len(tokens):
                    tokens, reason = tokens[:limit], "length"
                prompt_ids = token_ids(prompt)
                eval_started = time.perf_counter_ns()
                for index, token in enumerate(tokens):
                    if mid_stream is not None and index == mid_stream.after_chunks:
                        await self._fault_mid_stream(mid_stream)
                    await asyncio.sleep(self.token_delay)
                    chunk: dict[str, Any] = {"model": name, "created_at": rfc3339()}
                    if kind == "generate":
                        chunk["response"] = token
                    else:
                        chunk["message"] = {"role": "assistant", "content": token}
                    chunk["done"] = False
                    yield chunk
                if mid_stream is not None and mid_stream.after_chunks >= len(tokens):
                    await self._fault_mid_stream(mid_stream)
                ended = time.perf_counter_ns()
                final: dict[str, Any] = {"model": name, "created_at": rfc3339()}
                if kind == "generate":
                    final["response"] = ""
                else:
                    final["message"] = {"role": "assistant", "content": ""}
                final["done"] = True
                final["done_reason"] = reason
                if kind == "generate":
                    final["context"] = [*prompt_ids, *token_ids("".join(tokens))]
                metrics = {
                    "total_duration": ended - started,
                    "load_duration": int(load_s * 1e9),
                    "prompt_eval_count": len(prompt_ids) + 10,
                    "prompt_eval_duration": eval_started - prompt_started,
                    "eval_count": len(tokens),
                    "eval_duration": ended - eval_started,
                }
                final.update((k, v) for k, v in metrics.items() if v)
                self._touch(state, keep_alive)
                if keep_alive == 0:
                    self._unload(state)
                self.counters.completed += 1
                yield final
            finally:
                self._scheduler.release(state)
        except asyncio.CancelledError:
            self.counters.cancelled += 1
            raise

    async def _fault_mid_stream(self, fault: Fault) -> None:
        if fault.kind == "error_line":
            raise StreamError(fault.message)
        if fault.kind == "drop":
            raise DropConnection
        await self._stall(fault)

    async def _stall(self, fault: Fault) -> None:
        if fault.seconds is None:
            await asyncio.Event().wait()  # until the client leaves (cancellation)
        else:
            await asyncio.sleep(fault.seconds)

    # -- embeddings ----------------------------------------------------------------------
    async def _embed(self, request: Request) -> Response:
        started = time.perf_counter_ns()
        body = self._body(request)
        state = self._state(body)
        raw = body.get("input", [])
        inputs = [raw] if isinstance(raw, str) else list(raw or [])
        if not all(isinstance(i, str) for i in inputs):
            raise ApiError(400, "invalid input type")
        if not inputs:
            return Response(200, dump({"model": body["model"], "embeddings": []}))
        keep_alive = keep_alive_seconds(body.get("keep_alive"))
        ticket = self._admit(state)
        try:
            load_s = await self._load(state, keep_alive, 0)
        except BaseException:
            ticket.leave()
            raise
        async with self._scheduler.running(state, ticket):
            dim = int(body.get("dimensions") or state.model.embedding_length)
            vectors = [self._vector(state.model.name, text, dim) for text in inputs]
            count = sum(len(token_ids(text)) for text in inputs)
        self._touch(state, keep_alive)
        answer: dict[str, Any] = {"model": body["model"], "embeddings": vectors}
        metrics = {
            "total_duration": time.perf_counter_ns() - started,
            "load_duration": int(load_s * 1e9),
            "prompt_eval_count": count,
        }
        answer.update((k, v) for k, v in metrics.items() if v)
        return Response(200, dump(answer))

    async def _embeddings(self, request: Request) -> Response:
        body = self._body(request)
        state = self._state(body)
        prompt = body.get("prompt") or ""
        vector = (
            self._vector(state.model.name, prompt, state.model.embedding_length) if prompt else []
        )
        return Response(200, dump({"embedding": vector}))

    def _vector(self, model: str, text: str, dim: int) -> list[float]:
        rng = seeded(self.seed, model, "embed", text)
        values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        return [round(v / norm, 7) for v in values]


_MID_STREAM = ("error_line", "drop", "stall")
