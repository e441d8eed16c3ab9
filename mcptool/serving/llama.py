"""A GGUF model in this process, through llama.cpp's server engine (``xllamacpp``).

xllamacpp's ``Server`` runs llama.cpp's own server in-process: continuous batching over
``n_parallel`` slots, chat templates from the GGUF, JSON-schema-constrained sampling
(LLGuidance). It is called through its Python methods only. It always opens its own
HTTP listener too, with llama.cpp's OpenAI-style API and no authentication; so that
nothing else on the machine can reach it, it is told to listen on a Unix socket inside
a fresh directory only this user can enter (mode 0700), removed again at unload. No TCP
port of it is ever opened.

Its calls block (a load takes seconds, a generation as long as it generates) and
stream through a callback on the calling thread, so each runs in a worker thread and
hands its chunks to the event loop; returning True from the callback stops llama.cpp
at the next token, which is how a client leaving stops a generation.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mcptool.errors import UsageError
from mcptool.serving.generator import Done, Prompt, ToolCalls
from mcptool.serving.gguf import GGUFInfo
from mcptool.serving.scheduler import Shape
from mcptool.serving.toolcalls import ToolCallReader, calls_of
from mcptool.serving.wire import StreamError

RUNTIME_HINT = "pip install 'mcptool[local-model]' (and on Debian: apt-get install libgomp1)"
_END = object()

# Ollama option -> llama.cpp request field, where the two differ only in name
_OPTIONS = {
    "temperature": "temperature",
    "seed": "seed",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "mirostat": "mirostat",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
    "num_keep": "n_keep",
}


def import_runtime() -> Any:
    """The ``xllamacpp`` module, or a UsageError saying how to install it."""
    try:
        import xllamacpp  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError as exc:
        # a missing libgomp.so.1 shows up as an ImportError naming it
        missing = "libgomp1 is missing" if "libgomp" in str(exc) else "xllamacpp is not installed"
        raise UsageError(f"cannot run a local model: {missing}: {RUNTIME_HINT}") from None
    return xllamacpp


def request_body(prompt: Prompt) -> dict[str, Any]:
    """The llama.cpp (OpenAI-style) request for an Ollama generate or chat."""
    body: dict[str, Any] = {"stream": True}
    if prompt.raw is not None:
        body["prompt"] = prompt.raw
    else:
        body["messages"] = [_openai_message(m, i) for i, m in enumerate(prompt.messages)]
        if prompt.tools:
            body["tools"] = prompt.tools
    options = prompt.options
    for ours, theirs in _OPTIONS.items():
        if options.get(ours) is not None:
            body[theirs] = options[ours]
    limit = options.get("num_predict")
    if isinstance(limit, int) and limit >= 0:
        body["max_tokens"] = limit
    stop = options.get("stop")
    if stop:
        body["stop"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(prompt.format, dict):
        body["json_schema"] = prompt.format
    elif prompt.format == "json":
        body["json_schema"] = {"type": "object"}
    return body


def _openai_message(message: dict[str, Any], position: int) -> dict[str, Any]:
    """An Ollama chat message as llama.cpp takes it (OpenAI's shape): a call's arguments
    as JSON text, with an id; a tool result keeps Ollama's ``tool_name`` as ``name`` (the
    chat templates that show it read that; Qwen's shows neither)."""
    out: dict[str, Any] = {"role": message["role"], "content": message.get("content") or ""}
    calls = message.get("tool_calls")
    if calls:
        out["tool_calls"] = [
            {
                "id": f"call_{position}_{i}",
                "type": "function",
                "function": {
                    "name": str((call.get("function") or {}).get("name", "")),
                    "arguments": json.dumps((call.get("function") or {}).get("arguments") or {}),
                },
            }
            for i, call in enumerate(calls)
        ]
    if message["role"] == "tool" and message.get("tool_name"):
        out["name"] = str(message["tool_name"])
    return out


def chunk_calls(chunk: dict[str, Any], into: dict[int, dict[str, str]]) -> None:
    """Add a chunk's ``delta.tool_calls`` (OpenAI's: the name, then the arguments' JSON
    text in pieces, keyed by index) to ``into``."""
    choice = (chunk.get("choices") or [{}])[0]
    source = choice.get("delta") or choice.get("message") or {}
    for call in source.get("tool_calls") or ():
        entry = into.setdefault(int(call.get("index", len(into))), {"name": "", "arguments": ""})
        function = call.get("function") or {}
        entry["name"] += function.get("name") or ""
        entry["arguments"] += function.get("arguments") or ""


def chunk_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices") or [{}]
    choice = choices[0]
    if "delta" in choice:
        return (choice.get("delta") or {}).get("content") or ""
    return choice.get("text") or ""


class LlamaGenerator:
    """One GGUF served by llama.cpp in this process (see the module's docstring)."""

    def __init__(
        self, info: GGUFInfo, *, threads: int, ctx: int, parallel: int, runtime: Any = None
    ) -> None:
        self.info = info
        self.threads = threads
        self.ctx = ctx
        self.parallel = parallel
        self._xlc = runtime if runtime is not None else import_runtime()
        self._server: Any = None
        self._socket_dir: Path | None = None
        # one worker per slot, plus one for loads and unloads
        self._pool = ThreadPoolExecutor(parallel + 1, thread_name_prefix="llama")

    @property
    def loaded(self) -> bool:
        return self._server is not None

    async def load(self, shape: Shape) -> Shape:
        wanted = Shape(shape.num_ctx or self.ctx, shape.num_thread or self.threads)
        await self.unload()
        loop = asyncio.get_running_loop()
        # a client leaving cannot stop llama.cpp mid-load; the load finishes in its thread
        # and the model stays loaded for the next request
        server, folder = await asyncio.shield(loop.run_in_executor(self._pool, self._new, wanted))
        self._server, self._socket_dir = server, folder
        return wanted

    def _new(self, shape: Shape) -> tuple[Any, Path]:
        params = self._xlc.CommonParams()
        params.model.path = str(self.info.path)
        params.n_ctx = shape.num_ctx * self.parallel  # llama.cpp splits it between slots
        params.n_parallel = self.parallel
        params.cpuparams.n_threads = shape.num_thread
        params.cpuparams_batch.n_threads = shape.num_thread
        params.n_threads_http = 1
        params.warmup = False
        params.verbosity = 0  # llama.cpp's log lines would bury the server's own output
        folder = Path(tempfile.mkdtemp(prefix="mcptool-llama-"))  # mode 0700
        params.hostnames = [str(folder / "llama.sock")]
        try:
            return self._xlc.Server(params), folder
        except Exception as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise UsageError(
                f"llama.cpp cannot load {self.info.path} (architecture "
                f"{self.info.architecture!r}, {self.info.quantization}): {exc}; "
                "name a GGUF model that llama.cpp supports"
            ) from None

    async def unload(self) -> None:
        server, folder = self._server, self._socket_dir
        self._server = self._socket_dir = None
        if server is None:
            return

        def drop() -> None:
            nonlocal server
            server = None  # the last reference: llama.cpp stops its loop and frees memory
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

        await asyncio.get_running_loop().run_in_executor(self._pool, drop)

    async def close(self) -> None:
        await self.unload()
        self._pool.shutdown(wait=True)

    async def generate(self, prompt: Prompt) -> AsyncIterator[str | ToolCalls | Done]:
        server = self._server
        if server is None:
            raise StreamError("the model was unloaded")
        body = request_body(prompt)
        method: Callable[..., Any] = (
            server.handle_completions if prompt.raw is not None else server.handle_chat_completions
        )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def on_chunk(chunk: dict[str, Any]) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            return stop.is_set()

        def run() -> None:
            method(body, on_chunk)

        future = loop.run_in_executor(self._pool, run)
        # the future completes through the loop after every chunk already queued
        future.add_done_callback(lambda _: queue.put_nowait(_END))
        reason, timings = "stop", {}
        reader = ToolCallReader() if prompt.tools else None
        parsed: dict[int, dict[str, str]] = {}  # calls llama.cpp parsed itself
        try:
            while (chunk := await queue.get()) is not _END:
                if "error" in chunk:
                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, dict) else error
                    raise StreamError(str(message))
                chunk_calls(chunk, parsed)
                text = chunk_text(chunk)
                if text and reader is not None:
                    text = reader.feed(text)
                if text:
                    yield text
                finish = (chunk.get("choices") or [{}])[0].get("finish_reason")
                if finish:
                    reason = "length" if finish == "length" else "stop"
                timings = chunk.get("timings") or timings
            try:
                future.result()
            except ValueError as exc:  # llama.cpp refused the request
                raise StreamError(str(exc)) from None
        finally:
            stop.set()
            await _finished(future)
        calls: list[dict[str, Any]] = []
        if reader is not None:
            calls, rest = reader.end()
            if rest:
                yield rest
        for entry in parsed.values():
            calls.extend(calls_of(entry))
        if calls:
            yield ToolCalls(calls)
        yield Done(
            reason=reason,
            prompt_eval_count=int(timings.get("prompt_n", 0)) + int(timings.get("cache_n", 0)),
            prompt_eval_duration=int(float(timings.get("prompt_ms", 0)) * 1e6),
            eval_count=int(timings.get("predicted_n", 0)),
            eval_duration=int(float(timings.get("predicted_ms", 0)) * 1e6),
        )


async def _finished(future: asyncio.Future[None]) -> None:
    """Wait until llama.cpp has stopped (its slot is busy until then), even when cancelled
    meanwhile; the cancellation is passed on after."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:
            break  # its error was already reported, or the caller left
    if cancelled:
        raise asyncio.CancelledError
