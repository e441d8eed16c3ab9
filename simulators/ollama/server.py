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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulators.ollama.catalog import SimModel, canonical
from simulators.ollama.faults import Fault, FaultKind, FaultPlan
from simulators.ollama.http import DropConnection, HTTPServer, Request, Response
from simulators.ollama.schema_values import value_for
from simulators.ollama.text import seeded, sentence, token_ids, tokenize

BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
DEFAULT_KEEP_ALIVE = 300.0
_JSON = "application/json; charset=utf-8"
_NDJSON = "application/x-ndjson"

AnswerHook = Callable[[str, Mapping[str, Any]], str | None]
"""``(endpoint, request body) -> answer text``, or None for the simulator's own answer."""


class _Reply(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Counters:
    """What the simulator saw: tests assert on these instead of on timing."""

    requests: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    generations: int = 0
    completed: int = 0
    cancelled: int = 0
    loads: int = 0
    loads_aborted: int = 0
    unloads: int = 0
    rejected_busy: int = 0
    faults_fired: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    waiting: int = 0
    max_waiting: int = 0

    def reset(self) -> None:
        fresh = Counters()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))


@dataclass
class _ModelState:
    model: SimModel
    slots: asyncio.Semaphore
    load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    expires: float | None = None  # loop time; None: not loaded; math.inf: forever
    expires_wall: float = 0.0
    context_length: int = 0

    def loaded(self, now: float) -> bool:
        return self.expires is not None and self.expires > now


def rfc3339(ns: int | None = None) -> str:
    """Go's RFC3339Nano in UTC: what Ollama writes in ``created_at`` and ``modified_at``."""
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    fraction = f"{frac:09d}".rstrip("0")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def keep_alive_seconds(value: Any) -> float:
    """Ollama's keep_alive: seconds as a number or a Go duration; negative means forever."""
    if value is None or value == "":
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, bool):
        raise _Reply(400, f"json: cannot unmarshal bool into Go value of type {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        try:
            seconds = float(body) * sign
        except ValueError:
            parts = _DURATION.findall(body)
            if not parts or "".join(n + u for n, u in parts) != body:
                raise _Reply(400, f'time: invalid duration "{text}"') from None
            seconds = sign * sum(float(n) * _UNIT[u] for n, u in parts)
    return math.inf if seconds < 0 else seconds


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _error(status: int, message: str) -> Response:
    return Response(status, _dump({"error": message}))


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
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        if queue < 0:
            raise ValueError("queue must be at least 0")
        self.seed = seed
        self.load_delay = load_delay
        self.token_delay = token_delay
        self.parallel = parallel
        self.queue = queue
        self.version = version
        self.answer = answer
        self.tokens = tokens
        self.counters = Counters()
        self.faults = FaultPlan()
        self._models: dict[str, _ModelState] = {}
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
        self._models[sim_model.name] = _ModelState(sim_model, asyncio.Semaphore(self.parallel))
        return sim_model

    def remove_model(self, name: str) -> None:
        self._models.pop(canonical(name), None)

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
    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    async def _handle(self, request: Request) -> Response | None:
        self.counters.requests += 1
        self.counters.by_path[request.path] += 1
        route = self._routes.get((request.method, request.path))
        if route is None:
            response: Response | None = Response(404, b"404 page not found", "text/plain")
        else:
            try:
                response = await route(request)
            except _Reply as reply:
                response = _error(reply.status, reply.message)
        if response is not None:
            self.counters.by_status[response.status] += 1
        return response

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        if not request.body.strip():
            raise _Reply(400, "missing request body")
        try:
            body = json.loads(request.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _Reply(400, f"invalid character in request body: {exc}") from None
        if not isinstance(body, dict):
            raise _Reply(400, "json: cannot unmarshal into Go value of type api.Request")
        return body

    def _state(self, body: Mapping[str, Any]) -> _ModelState:
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            raise _Reply(400, "model is required")
        state = self._models.get(canonical(name))
        if state is None:
            raise _Reply(404, f"model '{name}' not found")
        return state

    # -- simple endpoints ----------------------------------------------------------------
    async def _root(self, request: Request) -> Response:
        return Response(200, b"Ollama is running", "text/plain; charset=utf-8")

    async def _version(self, request: Request) -> Response:
        return Response(200, _dump({"version": self.version}))

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
        return Response(200, _dump({"models": models}))

    async def _ps(self, request: Request) -> Response:
        now = self._now()
        models = []
        for s in self._models.values():
            if not s.loaded(now):
                continue
            expires = (
                "2318-01-01T00:00:00Z"
                if s.expires == math.inf
                else rfc3339(int(s.expires_wall * 1e9))
            )
            models.append(
                {
                    "name": s.model.name,
                    "model": s.model.name,
                    "size": s.model.size,
                    "digest": s.model.digest,
                    "details": s.model.details(),
                    "expires_at": expires,
                    "size_vram": s.model.size,
                    "context_length": s.context_length or 4096,
                }
            )
        return Response(200, _dump({"models": models}))

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
            _dump(
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

    # -- scheduling ----------------------------------------------------------------------
    def _admit(self, state: _ModelState) -> _Ticket:
        # Like OLLAMA_MAX_QUEUE: a request that cannot run now waits, unless `queue`
        # requests wait already.
        if state.slots.locked() and self.counters.waiting >= self.queue:
            self.counters.rejected_busy += 1
            raise _Reply(503, BUSY_MESSAGE)
        self.counters.waiting += 1
        self.counters.max_waiting = max(self.counters.max_waiting, self.counters.waiting)
        return _Ticket()

    async def _load(self, state: _ModelState, keep_alive: float, num_ctx: int) -> float:
        """Make sure the model is loaded; return the seconds this request waited for a load
        (its own or a concurrent one's), 0 if the model was warm."""
        needs_reload = num_ctx and state.context_length and num_ctx != state.context_length
        if state.loaded(self._now()) and not needs_reload:
            return 0.0
        started = self._now()
        async with state.load_lock:
            if state.loaded(self._now()) and not needs_reload:
                return self._now() - started  # waited for another request's load
            try:
                if self.load_delay > 0:
                    await asyncio.sleep(self.load_delay)
            except asyncio.CancelledError:
                self.counters.loads_aborted += 1
                raise
            self.counters.loads += 1
            state.context_length = num_ctx or 4096
            self._touch(state, keep_alive)
            return max(self._now() - started, 1e-9)

    def _touch(self, state: _ModelState, keep_alive: float) -> None:
        if keep_alive == math.inf:
            state.expires = math.inf
        else:
            state.expires = self._now() + keep_alive
            state.expires_wall = time.time() + keep_alive

    def _unload(self, state: _ModelState) -> None:
        if state.expires is not None:
            self.counters.unloads += 1
        state.expires = None

    @contextlib.asynccontextmanager
    async def _slot(self, state: _ModelState, ticket: _Ticket) -> AsyncIterator[None]:
        try:
            await state.slots.acquire()
        finally:
            ticket.leave(self.counters)
        self.counters.in_flight += 1
        self.counters.max_in_flight = max(self.counters.max_in_flight, self.counters.in_flight)
        try:
            yield
        finally:
            self.counters.in_flight -= 1
            state.slots.release()

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
        fmt = body.get("format")
        if fmt not in (None, "", "json") and not isinstance(fmt, dict):
            raise _Reply(400, 'invalid format: expected "json" or a valid JSON schema')
        if state.model.embedding_only:
            raise _Reply(400, f'"{name}" does not support {kind}')
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise _Reply(400, "json: cannot unmarshal options into Go value of type map")
        keep_alive = keep_alive_seconds(body.get("keep_alive"))
        if kind == "generate":
            prompt = body.get("prompt") or ""
            empty = not prompt and not body.get("images")
        else:
            messages = body.get("messages") or []
            if not isinstance(messages, list):
                raise _Reply(
                    400, "json: cannot unmarshal messages into Go value of type []api.Message"
                )
            prompt = "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
            empty = not messages
        fault = self.faults.take(request.path, state.model.name)
        if fault is not None:
            self.counters.faults_fired += 1
            if fault.kind == "status":
                raise _Reply(fault.status, fault.message)
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
                200, content_type=_NDJSON, stream=self._ndjson(chunks, ticket, blank=blank)
            )
        return await self._collect(kind, chunks, ticket)

    async def _load_or_unload(
        self,
        state: _ModelState,
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
                ticket.leave(self.counters)
            self._touch(state, keep_alive)
            reason = "load"
        answer: dict[str, Any] = {"model": name, "created_at": rfc3339()}
        if kind == "generate":
            answer["response"] = ""
        else:
            answer["message"] = {"role": "assistant", "content": ""}
        answer.update(done=True, done_reason=reason)
        return Response(200, _dump(answer))

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
        state: _ModelState,
        prompt: str,
        keep_alive: float,
        options: Mapping[str, Any],
        fault: Fault | None,
        started: int,
        ticket: _Ticket,
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
                await state.slots.acquire()
            finally:
                ticket.leave(self.counters)
            self.counters.in_flight += 1
            self.counters.max_in_flight = max(self.counters.max_in_flight, self.counters.in_flight)
            try:
                prompt_started = time.perf_counter_ns()
                tokens = self._answer(kind, body, prompt, fault)
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
                self.counters.in_flight -= 1
                state.slots.release()
        except asyncio.CancelledError:
            self.counters.cancelled += 1
            raise

    async def _fault_mid_stream(self, fault: Fault) -> None:
        if fault.kind == "error_line":
            raise _MidStreamError(fault.message)
        if fault.kind == "drop":
            raise DropConnection
        await self._stall(fault)

    async def _stall(self, fault: Fault) -> None:
        if fault.seconds is None:
            await asyncio.Event().wait()  # until the client leaves (cancellation)
        else:
            await asyncio.sleep(fault.seconds)

    async def _ndjson(
        self, chunks: AsyncGenerator[dict[str, Any], None], ticket: _Ticket, *, blank: bool = False
    ) -> AsyncIterator[bytes]:
        prefix = b"\r\n\n" if blank else b""
        try:
            async for chunk in chunks:
                yield prefix + _dump(chunk) + b"\n"
        except _MidStreamError as exc:
            yield _dump({"error": str(exc)}) + b"\n"
        finally:
            ticket.leave(self.counters)
            await chunks.aclose()

    async def _collect(
        self, kind: str, chunks: AsyncGenerator[dict[str, Any], None], ticket: _Ticket
    ) -> Response:
        text: list[str] = []
        final: dict[str, Any] = {}
        try:
            async for chunk in chunks:
                if chunk.get("done"):
                    final = chunk
                elif kind == "generate":
                    text.append(chunk["response"])
                else:
                    text.append(chunk["message"]["content"])
        except _MidStreamError as exc:
            return _error(500, str(exc))
        finally:
            ticket.leave(self.counters)
            await chunks.aclose()
        if kind == "generate":
            final["response"] = "".join(text)
        else:
            final["message"] = {"role": "assistant", "content": "".join(text)}
        return Response(200, _dump(final))

    # -- embeddings ----------------------------------------------------------------------
    async def _embed(self, request: Request) -> Response:
        started = time.perf_counter_ns()
        body = self._body(request)
        state = self._state(body)
        raw = body.get("input", [])
        inputs = [raw] if isinstance(raw, str) else list(raw or [])
        if not all(isinstance(i, str) for i in inputs):
            raise _Reply(400, "invalid input type")
        if not inputs:
            return Response(200, _dump({"model": body["model"], "embeddings": []}))
        keep_alive = keep_alive_seconds(body.get("keep_alive"))
        ticket = self._admit(state)
        try:
            load_s = await self._load(state, keep_alive, 0)
        except BaseException:
            ticket.leave(self.counters)
            raise
        async with self._slot(state, ticket):
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
        return Response(200, _dump(answer))

    async def _embeddings(self, request: Request) -> Response:
        body = self._body(request)
        state = self._state(body)
        prompt = body.get("prompt") or ""
        vector = (
            self._vector(state.model.name, prompt, state.model.embedding_length) if prompt else []
        )
        return Response(200, _dump({"embedding": vector}))

    def _vector(self, model: str, text: str, dim: int) -> list[float]:
        rng = seeded(self.seed, model, "embed", text)
        values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        return [round(v / norm, 7) for v in values]


class _Ticket:
    """A place in the wait queue, left exactly once (when a slot is taken or on failure)."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = False

    def leave(self, counters: Counters) -> None:
        if not self.left:
            self.left = True
            counters.waiting -= 1


_MID_STREAM = ("error_line", "drop", "stall")


class _MidStreamError(Exception):
    """Raised inside a stream to end it with an ``{"error": ...}`` line."""
