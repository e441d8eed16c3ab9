"""Ollama's API on the server side, once: what ``mcptool model serve`` and the Ollama
simulator both run.

The endpoints Ollama's clients use (mcptool's and the official ``ollama`` package):
``GET /``, ``/api/version``, ``/api/tags``, ``/api/ps``, ``POST /api/show``,
``/api/generate`` and ``/api/chat``, streamed (NDJSON) or not, ``format`` as "json" or a
JSON schema, options, keep_alive and preload/unload by an empty prompt, Ollama's
nanosecond figures and ``done_reason``, ``/api/embed`` (and the old ``/api/embeddings``)
for models that embed, 404 for a model the server does not have and 503 when the queue
is full. :class:`OllamaAPI` holds the routes, the request checks, the error shapes, the
NDJSON stream and the timing fields, over ``serving.http``, ``serving.wire`` and
``serving.scheduler``; a server brings its models (:class:`ServedModel`, each with a
:class:`~mcptool.serving.generator.Generator`) and, where it needs them, the hooks
``_screen`` and ``_before_load`` (the simulator's faults) and ``_line_prefix``.

:class:`OllamaServer` is one GGUF model behind it. Differences from Ollama, on purpose:
one model, named at start; no ``context`` token list on generate (llama.cpp keeps its
own prompt cache); ``/api/embed`` answers 400, pull, push, create and delete 404, there
being nothing to pull.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, Self

from mcptool import __version__
from mcptool.errors import McptoolError
from mcptool.serving.generator import Done, Generator, Prompt, ToolCalls
from mcptool.serving.gguf import GGUFInfo
from mcptool.serving.http import HTTPServer, Request, Response
from mcptool.serving.scheduler import ModelSlots, Scheduler, SchedulingCounters, Shape, Ticket
from mcptool.serving.wire import (
    FOREVER_STAMP,
    NDJSON,
    ApiError,
    StreamError,
    check_format,
    collect,
    dump,
    error,
    final,
    full_name,
    keep_alive_seconds,
    messages_of,
    model_name,
    ndjson,
    options_of,
    piece,
    read_body,
    rfc3339,
    tools_of,
)

VERSION = f"0.12.6-mcptool-{__version__}"
"""An Ollama API version clients accept, marked as this server's."""
MODEL_SERVE = f"mcptool-model-serve/{__version__}"
"""``model serve``'s ``Server`` header. A real Ollama sends none; mcptool's client reads
it to tell a server that can pull models from one that serves what it was started with."""

Embedder = Callable[[list[str], int | None], tuple[list[list[float]], int]]
"""``(texts, dimensions or None) -> (one vector a text, prompt tokens)``."""


def same_model(asked: str, served: str) -> bool:
    """Ollama's name matching: a name without a tag means ``:latest``; case is ignored."""
    return _key(asked) == _key(served)


def _key(name: str) -> str:
    return full_name(name).lower()


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One model a server has: what ``/api/tags``, ``/api/ps`` and ``/api/show`` say
    about it, and the generator that answers for it."""

    name: str
    generator: Generator
    size: int
    details: dict[str, Any]
    digest: str = ""
    modified_ns: int = field(default_factory=time.time_ns)
    context_length: int = 0
    """The trained context: a larger ``num_ctx`` is clamped to it (0: unknown)."""
    capabilities: tuple[str, ...] = ("completion",)
    """Without "completion", generate and chat answer 400 (an embedding model)."""
    size_vram: int = 0
    show: Mapping[str, Any] = field(default_factory=dict)
    """``/api/show``'s license, modelfile, parameters, template and model_info."""
    embed: Embedder | None = None
    """None: ``/api/embed`` answers 400 ``does not support embeddings``."""


@dataclass
class ServerCounters(SchedulingCounters):
    """What the server saw: tests assert on these instead of on timing."""

    requests: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    generations: int = 0
    completed: int = 0
    cancelled: int = 0


def _int_option(options: Mapping[str, Any], key: str) -> int:
    value = options.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(400, f"option {key} must be a whole number of at least 0, not {value!r}")
    return value


class OllamaAPI:
    """Ollama's API for the models a subclass adds, on ``host:port`` (0: an ephemeral one)."""

    def __init__(
        self,
        counters: ServerCounters | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        parallel: int = 1,
        queue: int = 512,
        version: str = VERSION,
        server: str = "",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.counters = counters = counters if counters is not None else ServerCounters()
        self.version = version
        self._scheduler = Scheduler(counters, parallel=parallel, queue=queue, clock=clock)
        self._models: dict[str, ModelSlots[ServedModel]] = {}
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http = HTTPServer(self._handle, host, port, server)
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
    async def start(self) -> Self:
        await self._http.start()
        return self

    async def stop(self) -> None:
        await self._http.stop()
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        for slots in self._models.values():
            await slots.model.generator.unload()

    async def __aenter__(self) -> Self:
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

    @property
    def parallel(self) -> int:
        return self._scheduler.parallel

    @property
    def queue(self) -> int:
        return self._scheduler.queue

    @queue.setter
    def queue(self, value: int) -> None:
        self._scheduler.queue = value

    # -- the models ----------------------------------------------------------------------
    def _add(self, model: ServedModel) -> None:
        self._models[_key(model.name)] = self._scheduler.slots_for(model)

    def _remove(self, name: str) -> None:
        self._models.pop(_key(name), None)

    @property
    def models(self) -> list[str]:
        return [slots.model.name for slots in self._models.values()]

    def is_loaded(self, name: str) -> bool:
        slots = self._models.get(_key(name))
        return slots is not None and slots.loaded(self._scheduler.now())

    def _slots(self, body: Mapping[str, Any]) -> tuple[str, ModelSlots[ServedModel]]:
        """The name as asked and its model, or Ollama's 404."""
        name = model_name(body)
        slots = self._models.get(_key(name))
        if slots is None:
            raise ApiError(404, self._not_found(name))
        return name, slots

    def _not_found(self, name: str) -> str:
        """The 404 text for a model this server lacks; a server that cannot pull models
        adds, after ``not found: ``, what it has and how to get the one asked for."""
        return f"model '{name}' not found"

    async def preload(
        self, shape: Shape | None = None, keep_alive: float = math.inf, *, model: str = ""
    ) -> float:
        """Load a model now, as an empty prompt does (default: the first one); the seconds
        the load took."""
        slots = self._slots({"model": model})[1] if model else next(iter(self._models.values()))
        return await self._load(slots, keep_alive, shape or Shape())

    async def _load(self, slots: ModelSlots[ServedModel], keep_alive: float, shape: Shape) -> float:
        seconds = await self._scheduler.load(slots, keep_alive, shape, slots.model.generator.load)
        self._keep(slots, keep_alive)
        return seconds

    def _keep(self, slots: ModelSlots[ServedModel], keep_alive: float) -> None:
        """Keep the model loaded ``keep_alive`` from now, then free its memory."""
        self._scheduler.touch(slots, keep_alive)
        key = _key(slots.model.name)
        handle = self._expiry.pop(key, None)
        if handle is not None:
            handle.cancel()
        if keep_alive != math.inf:
            loop = asyncio.get_running_loop()
            self._expiry[key] = loop.call_later(keep_alive, self._expire, slots)

    def _expire(self, slots: ModelSlots[ServedModel]) -> None:
        self._expiry.pop(_key(slots.model.name), None)
        if slots.running == 0 and not slots.loaded(self._scheduler.now()):
            task = asyncio.get_running_loop().create_task(self._unload(slots))
            self._tasks.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)

    async def _unload(self, slots: ModelSlots[ServedModel]) -> None:
        if slots.running:
            return  # a request still runs; its end keeps the model for its keep_alive
        self._scheduler.unload(slots)
        await slots.model.generator.unload()

    # -- hooks for what a server does on its own -----------------------------------------
    async def _screen(self, path: str, model: ServedModel, body: Mapping[str, Any]) -> Any:
        """A valid generation request before it waits or loads: raise ApiError to answer
        with an error status, DropConnection to cut the connection; what is returned goes
        to the generator as ``Prompt.tag``."""
        return None

    async def _before_load(self, prompt: Prompt) -> None:
        """After the request took its place in the queue, before the load (nothing has
        been sent yet): a stall here looks like a model load to the client."""

    def _line_prefix(self, prompt: Prompt) -> bytes:
        """Bytes before every NDJSON line (Ollama sends none)."""
        return b""

    # -- plumbing ------------------------------------------------------------------------
    async def _handle(self, request: Request) -> Response | None:
        counters = self.counters
        counters.requests += 1
        counters.by_path[request.path] += 1
        route = self._routes.get((request.method, request.path))
        if route is None:
            response: Response | None = Response(404, b"404 page not found", "text/plain")
        else:
            try:
                response = await route(request)
            except ApiError as reply:
                response = error(reply.status, reply.message)
        if response is not None:
            counters.by_status[response.status] += 1
        return response

    # -- simple endpoints ----------------------------------------------------------------
    async def _root(self, request: Request) -> Response:
        return Response(200, b"Ollama is running", "text/plain; charset=utf-8")

    async def _version(self, request: Request) -> Response:
        return Response(200, dump({"version": self.version}))

    @staticmethod
    def _entry(model: ServedModel) -> dict[str, Any]:
        return {
            "name": model.name,
            "model": model.name,
            "size": model.size,
            "digest": model.digest,
            "details": model.details,
        }

    async def _tags(self, request: Request) -> Response:
        models = [
            {**self._entry(s.model), "modified_at": rfc3339(s.model.modified_ns)}
            for s in self._models.values()
        ]
        return Response(200, dump({"models": models}))

    async def _ps(self, request: Request) -> Response:
        now = self._scheduler.now()
        models = []
        for s in self._models.values():
            if not s.loaded(now):
                continue
            expires = FOREVER_STAMP if s.expires == math.inf else rfc3339(int(s.expires_wall * 1e9))
            models.append(
                {
                    **self._entry(s.model),
                    "expires_at": expires,
                    "size_vram": s.model.size_vram,
                    "context_length": s.shape.num_ctx,
                }
            )
        return Response(200, dump({"models": models}))

    async def _show(self, request: Request) -> Response:
        model = self._slots(read_body(request))[1].model
        shown = {
            "license": "",
            "modelfile": "",
            "parameters": "",
            "template": "",
            **model.show,
            "details": model.details,
            "model_info": model.show.get("model_info", {}),
            "capabilities": list(model.capabilities),
            "modified_at": rfc3339(model.modified_ns),
        }
        return Response(200, dump(shown))

    # -- embeddings ----------------------------------------------------------------------
    async def _embed(self, request: Request) -> Response:
        started = time.perf_counter_ns()
        body = read_body(request)
        name, slots = self._slots(body)
        embed = self._embedder(name, slots.model)
        raw = body.get("input", [])
        inputs = [raw] if isinstance(raw, str) else list(raw or [])
        if not all(isinstance(i, str) for i in inputs):
            raise ApiError(400, "invalid input type")
        if not inputs:
            return Response(200, dump({"model": name, "embeddings": []}))
        keep_alive = keep_alive_seconds(body.get("keep_alive"))
        ticket = self._scheduler.admit(slots)
        try:
            load_s = await self._load(slots, keep_alive, Shape())
        except BaseException:
            ticket.leave()
            raise
        async with self._scheduler.running(slots, ticket):
            vectors, count = embed(inputs, _int_option(body, "dimensions") or None)
        self._keep(slots, keep_alive)
        metrics = {
            "total_duration": time.perf_counter_ns() - started,
            "load_duration": int(load_s * 1e9),
            "prompt_eval_count": count,
        }
        answer = {"model": name, "embeddings": vectors, **{k: v for k, v in metrics.items() if v}}
        return Response(200, dump(answer))

    async def _embeddings(self, request: Request) -> Response:
        """The old endpoint: one prompt, one vector, no scheduling (as Ollama's)."""
        body = read_body(request)
        name, slots = self._slots(body)
        embed = self._embedder(name, slots.model)
        prompt = body.get("prompt") or ""
        vector = embed([str(prompt)], None)[0][0] if prompt else []
        return Response(200, dump({"embedding": vector}))

    @staticmethod
    def _embedder(name: str, model: ServedModel) -> Embedder:
        if model.embed is None:
            raise ApiError(400, f'"{name}" does not support embeddings')
        return model.embed

    # -- generation ----------------------------------------------------------------------
    async def _generate(self, request: Request) -> Response | None:
        return await self._generation(request, "generate")

    async def _chat(self, request: Request) -> Response | None:
        return await self._generation(request, "chat")

    async def _generation(self, request: Request, kind: Literal["generate", "chat"]) -> Response:
        started = time.perf_counter_ns()
        body = read_body(request)
        name, slots = self._slots(body)
        check_format(body.get("format"))
        if "completion" not in slots.model.capabilities:
            raise ApiError(400, f'"{name}" does not support {kind}')
        if kind == "chat" and body.get("tools") and "tools" not in slots.model.capabilities:
            raise ApiError(400, f'"{name}" does not support tools')
        options = options_of(body)
        shape = self._shape(slots.model, options)
        keep_alive = keep_alive_seconds(body.get("keep_alive"))
        prompt = self._prompt(kind, body, options)
        tag = await self._screen(request.path, slots.model, body)
        if prompt is None:
            return await self._load_or_unload(kind, name, slots, keep_alive, shape)
        if tag is not None:
            prompt = replace(prompt, tag=tag)
        ticket = self._scheduler.admit(slots)
        chunks = self._chunks(name, slots, prompt, keep_alive, shape, started, ticket)
        try:
            # headers leave with the first chunk, as Ollama's: a failure before it (the
            # model cannot load, the generator refuses the request) is an error status
            first = await anext(chunks)
        except ApiError as exc:
            await _abandon(chunks, ticket)
            return error(exc.status, exc.message)
        except (StreamError, McptoolError) as exc:  # McptoolError: the model cannot load
            await _abandon(chunks, ticket)
            return error(500, str(exc))
        except BaseException:
            await _abandon(chunks, ticket)
            raise
        rest = _prepend(first, chunks)
        if body.get("stream", True) is not False:
            lines = ndjson(rest, ticket.leave, prefix=self._line_prefix(prompt))
            return Response(200, content_type=NDJSON, stream=lines)
        return await collect(kind, rest, ticket.leave)

    @staticmethod
    def _shape(model: ServedModel, options: Mapping[str, Any]) -> Shape:
        """The load a request asks for; a context past the model's trained one is clamped
        to it, so that no request can make the server allocate more than the model uses."""
        num_ctx = _int_option(options, "num_ctx")
        if model.context_length and num_ctx > model.context_length:
            num_ctx = model.context_length
        return Shape(num_ctx, min(_int_option(options, "num_thread"), os.cpu_count() or 1))

    @staticmethod
    def _prompt(
        kind: Literal["generate", "chat"], body: Mapping[str, Any], options: dict[str, Any]
    ) -> Prompt | None:
        """The prompt, or None for an empty one (a preload or an unload)."""
        fmt = body.get("format") or None
        if kind == "generate":
            text = body.get("prompt") or ""
            if not isinstance(text, str):
                raise ApiError(400, "json: cannot unmarshal prompt into Go value of type string")
            if not text and not body.get("images"):
                return None
            if body.get("raw"):
                return Prompt(raw=text, format=fmt, options=options, kind=kind, body=body)
            messages = []
            if isinstance(body.get("system"), str) and body["system"]:
                messages.append({"role": "system", "content": body["system"]})
            messages.append({"role": "user", "content": text})
            return Prompt(messages=messages, format=fmt, options=options, kind=kind, body=body)
        raw_messages = messages_of(body)
        if not raw_messages:
            return None
        messages = [_message(m) for m in raw_messages]
        return Prompt(
            messages=messages,
            tools=tools_of(body),
            format=fmt,
            options=options,
            kind=kind,
            body=body,
        )

    async def _load_or_unload(
        self,
        kind: str,
        name: str,
        slots: ModelSlots[ServedModel],
        keep_alive: float,
        shape: Shape,
    ) -> Response:
        if keep_alive == 0:
            await self._unload(slots)
            reason = "unload"
        else:
            ticket = self._scheduler.admit(slots)
            try:
                await self._load(slots, keep_alive, shape)
            except McptoolError as exc:
                return error(500, str(exc))
            finally:
                ticket.leave()
            reason = "load"
        answer = piece(kind, name, "", done=True)
        answer["done_reason"] = reason
        return Response(200, dump(answer))

    async def _chunks(
        self,
        name: str,
        slots: ModelSlots[ServedModel],
        prompt: Prompt,
        keep_alive: float,
        shape: Shape,
        started: int,
        ticket: Ticket,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Every object of one answer, the final ``done`` one included."""
        counters = self.counters
        counters.generations += 1
        kind = prompt.kind
        try:
            try:
                await self._before_load(prompt)
                load_s = await self._load(slots, keep_alive, shape)
            except BaseException:
                ticket.leave()
                raise
            await self._scheduler.acquire(slots, ticket)
            try:
                done: Done | None = None
                async with contextlib.aclosing(slots.model.generator.generate(prompt)) as items:
                    async for item in items:
                        if isinstance(item, Done):
                            done = item
                        elif isinstance(item, ToolCalls):
                            yield piece(kind, name, "", tool_calls=item.calls)
                        elif item:
                            yield piece(kind, name, item)
                if done is None:
                    raise StreamError("the model stopped without finishing its answer")
                metrics = {
                    "total_duration": time.perf_counter_ns() - started,
                    "load_duration": int(load_s * 1e9),
                    "prompt_eval_count": done.prompt_eval_count,
                    "prompt_eval_duration": done.prompt_eval_duration,
                    "eval_count": done.eval_count,
                    "eval_duration": done.eval_duration,
                }
                self._keep(slots, keep_alive)
                counters.completed += 1
                yield final(kind, name, done.reason, metrics, done.context)
            finally:
                self._scheduler.release(slots)
                if keep_alive == 0:
                    await self._unload(slots)
        except asyncio.CancelledError:
            counters.cancelled += 1
            raise


def _message(raw: Any) -> dict[str, Any]:
    """One chat message as the model's template takes it: role and content, and what an
    agent loop sends back (an assistant's ``tool_calls``, a tool result's ``tool_name``)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("role"), str):
        raise ApiError(400, "json: cannot unmarshal message into Go value of api.Message")
    message: dict[str, Any] = {"role": raw["role"], "content": str(raw.get("content") or "")}
    calls = raw.get("tool_calls")
    if calls:
        if not isinstance(calls, list) or not all(
            isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls
        ):
            raise ApiError(400, "json: cannot unmarshal tool_calls into Go value of []api.ToolCall")
        message["tool_calls"] = calls
    if isinstance(raw.get("tool_name"), str) and raw["tool_name"]:
        message["tool_name"] = raw["tool_name"]
    return message


async def _abandon(chunks: AsyncGenerator[dict[str, Any], None], ticket: Ticket) -> None:
    ticket.leave()
    await chunks.aclose()


async def _prepend(
    first: dict[str, Any], rest: AsyncGenerator[dict[str, Any], None]
) -> AsyncGenerator[dict[str, Any], None]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()


class ModelFile(Generator, Protocol):
    """A generator for one GGUF file (``serving.llama``)."""

    info: GGUFInfo


class OllamaServer(OllamaAPI):
    """One GGUF model behind Ollama's API on ``host:port`` (port 0: an ephemeral one)."""

    def __init__(
        self,
        generator: ModelFile,
        name: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        parallel: int = 1,
        queue: int = 512,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(
            host=host, port=port, parallel=parallel, queue=queue, server=MODEL_SERVE, clock=clock
        )
        self.generator = generator
        self.name = name
        self._add(gguf_model(name, generator))

    def _not_found(self, name: str) -> str:
        return (
            f"model '{name}' not found: mcptool model serve has only {self.name} here; ask "
            f"for it, or serve another GGUF with `mcptool model serve --model FILE.gguf "
            f"--name {name}`"
        )


def gguf_model(name: str, generator: ModelFile) -> ServedModel:
    """What Ollama would say about a GGUF file, read from its header."""
    info = generator.info
    details = {
        "parent_model": "",
        "format": "gguf",
        "family": info.architecture,
        "families": [info.architecture],
        "parameter_size": info.parameter_size,
        "quantization_level": info.quantization,
    }
    model_info = info.model_info()
    template = model_info.pop("tokenizer.chat_template", "")
    try:
        modified = info.path.stat().st_mtime_ns
    except OSError:
        modified = time.time_ns()
    return ServedModel(
        name,
        generator,
        info.size,
        details,
        modified_ns=modified,
        context_length=info.context_length,
        # as Ollama decides it: a template that places tools can take them
        capabilities=("completion", "tools") if "tools" in template else ("completion",),
        size_vram=0,  # CPU only
        show={
            "license": "see the model's own licence (docs/OLLAMA.md names it)",
            "modelfile": f"FROM {info.path}\n",
            "template": template,
            "model_info": model_info,
        },
    )
