"""The Ollama API in front of one real model: what ``mcptool model serve`` runs.

The endpoints Ollama's clients use (mcptool's and the official ``ollama`` package):
``GET /``, ``/api/version``, ``/api/tags``, ``/api/ps``, ``POST /api/show``,
``/api/generate`` and ``/api/chat``, streamed (NDJSON) or not, ``format`` as "json" or a
JSON schema, options, keep_alive and preload/unload by an empty prompt, Ollama's
nanosecond figures and ``done_reason``, 404 for another model name and 503 when the
queue is full. The HTTP server, the wire format and the scheduling are the ones the
Ollama simulator uses (``serving.http``, ``serving.wire``, ``serving.scheduler``); the
text comes from a :class:`~mcptool.serving.generator.Generator`.

Differences from Ollama, on purpose: one model, named at start; no ``context`` token list
on generate (llama.cpp keeps its own prompt cache); ``/api/embed``, pull, push, create
and delete answer 400/404, there being nothing to pull.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from mcptool import __version__
from mcptool.errors import McptoolError
from mcptool.serving.generator import Done, Generator, Prompt
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
    keep_alive_seconds,
    messages_of,
    model_name,
    ndjson,
    options_of,
    piece,
    read_body,
    rfc3339,
)

VERSION = f"0.12.6-mcptool-{__version__}"
"""An Ollama API version clients accept, marked as this server's."""


def same_model(asked: str, served: str) -> bool:
    """Ollama's name matching: a name without a tag means ``:latest``."""

    def full(name: str) -> str:
        return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"

    return full(asked.strip().lower()) == full(served.lower())


def _int_option(options: dict[str, Any], key: str) -> int:
    value = options.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(400, f"option {key} must be a whole number of at least 0, not {value!r}")
    return value


class OllamaServer:
    """One model behind Ollama's API on ``host:port`` (port 0: an ephemeral one)."""

    def __init__(
        self,
        generator: Generator,
        name: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        parallel: int = 1,
        queue: int = 512,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.generator = generator
        self.name = name
        self.counters = SchedulingCounters()
        self._scheduler = Scheduler(self.counters, parallel=parallel, queue=queue, clock=clock)
        self._slots: ModelSlots[str] = self._scheduler.slots_for(name)
        self._expiry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = time.time_ns()
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
            ("POST", "/api/embed"): self._no_embeddings,
            ("POST", "/api/embeddings"): self._no_embeddings,
        }

    # -- life cycle ----------------------------------------------------------------------
    async def start(self) -> OllamaServer:
        await self._http.start()
        return self

    async def stop(self) -> None:
        await self._http.stop()
        if self._expiry is not None:
            self._expiry.cancel()
        await self.generator.unload()

    async def __aenter__(self) -> OllamaServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        host = f"[{self._http.host}]" if ":" in self._http.host else self._http.host
        return f"http://{host}:{self._http.port}"

    @property
    def port(self) -> int:
        return self._http.port

    async def preload(self, shape: Shape | None = None, keep_alive: float = math.inf) -> float:
        """Load the model now (as an empty prompt does); the seconds it took."""
        wanted = shape or Shape()
        seconds = await self._scheduler.load(self._slots, keep_alive, wanted, self.generator.load)
        self._keep(keep_alive)
        return seconds

    # -- plumbing ------------------------------------------------------------------------
    async def _handle(self, request: Request) -> Response | None:
        route = self._routes.get((request.method, request.path))
        if route is None:
            return Response(404, b"404 page not found", "text/plain")
        try:
            response: Response | None = await route(request)
        except ApiError as reply:
            response = error(reply.status, reply.message)
        return response

    def _model(self, body: dict[str, Any]) -> str:
        name = model_name(body)
        if not same_model(name, self.name):
            raise ApiError(404, f"model '{name}' not found")
        return name

    def _keep(self, keep_alive: float) -> None:
        """Keep the model loaded ``keep_alive`` from now, then free its memory."""
        self._scheduler.touch(self._slots, keep_alive)
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if keep_alive != math.inf:
            loop = asyncio.get_running_loop()
            self._expiry = loop.call_later(keep_alive, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        if self.counters.in_flight == 0 and not self._slots.loaded(self._scheduler.now()):
            task = asyncio.get_running_loop().create_task(self._unload())
            self._tasks.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)

    async def _unload(self) -> None:
        if self.counters.in_flight:
            return  # a request still runs; its end keeps the model for its keep_alive
        self._scheduler.unload(self._slots)
        await self.generator.unload()

    # -- simple endpoints ----------------------------------------------------------------
    async def _root(self, request: Request) -> Response:
        return Response(200, b"Ollama is running", "text/plain; charset=utf-8")

    async def _version(self, request: Request) -> Response:
        return Response(200, dump({"version": VERSION}))

    def _details(self) -> dict[str, Any]:
        info = self.generator.info
        return {
            "parent_model": "",
            "format": "gguf",
            "family": info.architecture,
            "families": [info.architecture],
            "parameter_size": info.parameter_size,
            "quantization_level": info.quantization,
        }

    def _entry(self) -> dict[str, Any]:
        info = self.generator.info
        return {
            "name": self.name,
            "model": self.name,
            "size": info.size,
            "digest": "",
            "details": self._details(),
        }

    async def _tags(self, request: Request) -> Response:
        entry = {**self._entry(), "modified_at": rfc3339(self._modified())}
        return Response(200, dump({"models": [entry]}))

    def _modified(self) -> int:
        try:
            return self.generator.info.path.stat().st_mtime_ns
        except OSError:
            return self._started

    async def _ps(self, request: Request) -> Response:
        slots = self._slots
        if not slots.loaded(self._scheduler.now()):
            return Response(200, dump({"models": []}))
        expires = (
            FOREVER_STAMP if slots.expires == math.inf else rfc3339(int(slots.expires_wall * 1e9))
        )
        entry = {
            **self._entry(),
            "expires_at": expires,
            "size_vram": 0,  # CPU only
            "context_length": slots.shape.num_ctx,
        }
        return Response(200, dump({"models": [entry]}))

    async def _show(self, request: Request) -> Response:
        self._model(read_body(request))
        info = self.generator.info
        model_info = info.model_info()
        template = model_info.pop("tokenizer.chat_template", "")
        return Response(
            200,
            dump(
                {
                    "license": "see the model's own licence (docs/OLLAMA.md names it)",
                    "modelfile": f"FROM {info.path}\n",
                    "parameters": "",
                    "template": template,
                    "details": self._details(),
                    "model_info": model_info,
                    "capabilities": ["completion"],
                    "modified_at": rfc3339(self._modified()),
                }
            ),
        )

    async def _no_embeddings(self, request: Request) -> Response:
        name = self._model(read_body(request))
        raise ApiError(400, f'"{name}" does not support embeddings')

    # -- generation ----------------------------------------------------------------------
    async def _generate(self, request: Request) -> Response | None:
        return await self._generation(request, "generate")

    async def _chat(self, request: Request) -> Response | None:
        return await self._generation(request, "chat")

    async def _generation(self, request: Request, kind: str) -> Response:
        started = time.perf_counter_ns()
        body = read_body(request)
        name = self._model(body)
        check_format(body.get("format"))
        options = options_of(body)
        shape = self._shape(options)
        keep_alive = keep_alive_seconds(body.get("keep_alive"))
        prompt = self._prompt(kind, body, options)
        if prompt is None:
            return await self._load_or_unload(kind, name, keep_alive, shape)
        ticket = self._scheduler.admit(self._slots)
        chunks = self._chunks(kind, name, prompt, keep_alive, shape, started, ticket)
        try:
            # headers leave with the first chunk, as Ollama's: a failure before it (the
            # model cannot load, llama.cpp refuses the request) is still an error status
            first = await anext(chunks)
        except (StreamError, McptoolError) as exc:  # McptoolError: the model cannot load
            ticket.leave()
            await chunks.aclose()
            return error(500, str(exc))
        except BaseException:
            ticket.leave()
            await chunks.aclose()
            raise
        rest = _prepend(first, chunks)
        if body.get("stream", True) is not False:
            return Response(200, content_type=NDJSON, stream=ndjson(rest, ticket.leave))
        return await collect(kind, rest, ticket.leave)

    def _shape(self, options: dict[str, Any]) -> Shape:
        """The load a request asks for; a context past the model's trained one is clamped
        to it, so that no request can make the server allocate more than the model uses."""
        num_ctx = _int_option(options, "num_ctx")
        trained = self.generator.info.context_length
        if trained and num_ctx > trained:
            num_ctx = trained
        return Shape(num_ctx, min(_int_option(options, "num_thread"), os.cpu_count() or 1))

    @staticmethod
    def _prompt(kind: str, body: dict[str, Any], options: dict[str, Any]) -> Prompt | None:
        """The prompt, or None for an empty one (a preload or an unload)."""
        fmt = body.get("format") or None
        if kind == "generate":
            text = body.get("prompt") or ""
            if not isinstance(text, str):
                raise ApiError(400, "json: cannot unmarshal prompt into Go value of type string")
            if not text:
                return None
            if body.get("raw"):
                return Prompt(raw=text, format=fmt, options=options)
            messages = []
            if isinstance(body.get("system"), str) and body["system"]:
                messages.append({"role": "system", "content": body["system"]})
            messages.append({"role": "user", "content": text})
            return Prompt(messages=messages, format=fmt, options=options)
        raw_messages = messages_of(body)
        if not raw_messages:
            return None
        messages = []
        for m in raw_messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise ApiError(400, "json: cannot unmarshal message into Go value of api.Message")
            messages.append({"role": m["role"], "content": str(m.get("content") or "")})
        return Prompt(messages=messages, format=fmt, options=options)

    async def _load_or_unload(
        self, kind: str, name: str, keep_alive: float, shape: Shape
    ) -> Response:
        if keep_alive == 0:
            await self._unload()
            reason = "unload"
        else:
            ticket = self._scheduler.admit(self._slots)
            try:
                await self._scheduler.load(self._slots, keep_alive, shape, self.generator.load)
            except McptoolError as exc:
                return error(500, str(exc))
            finally:
                ticket.leave()
            self._keep(keep_alive)
            reason = "load"
        answer = piece(kind, name, "", done=True)
        answer["done_reason"] = reason
        return Response(200, dump(answer))

    async def _chunks(
        self,
        kind: str,
        name: str,
        prompt: Prompt,
        keep_alive: float,
        shape: Shape,
        started: int,
        ticket: Ticket,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Every object of one answer, the final ``done`` one included."""
        try:
            load_s = await self._scheduler.load(self._slots, keep_alive, shape, self.generator.load)
        except BaseException:
            ticket.leave()
            raise
        await self._scheduler.acquire(self._slots, ticket)
        try:
            done: Done | None = None
            async with contextlib.aclosing(self.generator.generate(prompt)) as pieces:
                async for item in pieces:
                    if isinstance(item, Done):
                        done = item
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
            self._keep(keep_alive)
            yield final(kind, name, done.reason, metrics, None)
        finally:
            self._scheduler.release(self._slots)
            if keep_alive == 0:
                await self._unload()


async def _prepend(
    first: dict[str, Any], rest: AsyncGenerator[dict[str, Any], None]
) -> AsyncGenerator[dict[str, Any], None]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()
