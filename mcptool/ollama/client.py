"""An async Ollama client a gateway can trust: deadlines, retries, a bound, a breaker.

One pooled ``httpx.AsyncClient`` per :class:`OllamaClient`. Each call:

1. asks the circuit breaker (refused at once while the server keeps failing);
2. takes an in-flight slot, or waits in a bounded queue, or raises backpressure;
3. sends the request and waits for the first chunk under the *load* deadline, then for
   each next chunk under the *read* deadline; the *connect* deadline bounds the TCP
   connect and the *total* one the whole call, retries included (see ``deadlines``);
4. retries connection failures, 503 and other retryable 5xx with the project's backoff
   (see ``retry``), never a 4xx, never a load or read timeout (a retry would restart a
   slow model load from zero) and never after tokens reached the caller;
5. closes the HTTP stream on any early exit or cancellation, which makes Ollama stop
   generating (see ``stream``).

The pieces, one job each: ``transport`` (URL, pool, HTTP failures as typed errors),
``deadlines``, ``retry``, ``request`` (the generate/chat parameters, once), ``structured``
(``format`` and its checks), ``ndjson`` and ``answer`` (a streamed answer, parsed and put
together), ``stream`` (it, on the wire); this module is the public client over them.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Unpack

import httpx

from mcptool.ollama.admission import Admission
from mcptool.ollama.breaker import CircuitBreaker
from mcptool.ollama.deadlines import Timeouts, earliest, finite, span, total_deadline
from mcptool.ollama.errors import (
    CircuitOpen,
    InvalidStructuredOutput,
    OllamaError,
    OllamaProtocolError,
    OllamaTimeout,
    counts_against_server,
)
from mcptool.ollama.models import Chunk, Embeddings, Message, Metrics, ModelInfo, Result
from mcptool.ollama.request import (
    CHAT_KEYS,
    GENERATE_KEYS,
    ChatParams,
    GenerateParams,
    chat_body,
    check_params,
    encode,
    generate_body,
)
from mcptool.ollama.retry import Retrier, RetryPolicy
from mcptool.ollama.stream import ResponseStream
from mcptool.ollama.structured import REPAIR_PROMPT, Format, check_format, check_structured
from mcptool.ollama.transport import normalize_url, open_pool, status_error, transport_error


class OllamaClient:
    """Async client for one Ollama server. Use as ``async with OllamaClient(url) as c:``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        max_in_flight: int | None = None,
        max_waiting: int = 64,
        breaker: CircuitBreaker | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = normalize_url(url)
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        if max_in_flight is None:
            # Match the server's parallelism: Ollama's default OLLAMA_NUM_PARALLEL is 1.
            max_in_flight = int(os.environ.get("OLLAMA_NUM_PARALLEL") or 1)
        self.admission = Admission(max_in_flight, max_waiting)
        self.breaker = breaker or CircuitBreaker()
        self.server = ""
        """The ``Server`` header of the last answer: empty from a real Ollama, ``mcptool-...``
        from ``model serve`` and the simulator (see ``can_pull``)."""
        self._http = open_pool(self.url, self.timeouts, max_in_flight, headers)
        self._retrier = Retrier(self.retry)

    async def __aenter__(self) -> OllamaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- generation ----------------------------------------------------------------------
    async def generate(
        self,
        model: str,
        prompt: str,
        *,
        on_chunk: Callable[[Chunk], object] | None = None,
        **params: Unpack[GenerateParams],
    ) -> Result:
        """Generate a completion and return it whole.

        ``stream`` is the wire mode: streamed (default) lets the read deadline catch a
        model that stops mid-answer; ``False`` asks Ollama for one object, bounded only
        by the load and total deadlines. ``on_chunk`` sees pieces as they come.
        With ``format``, ``result.data`` is the parsed (and schema-checked) answer,
        with one repair retry; else :class:`InvalidStructuredOutput`.
        """
        format = params.get("format")
        check_format(format)
        body = generate_body(model, prompt, params)
        result = await self._complete("/api/generate", body, on_chunk)
        if not format:
            return result
        try:
            result.data = check_structured(result.text, format)
            return result
        except ValueError as first:
            repair = dict(body, prompt=f"{prompt}\n\n{REPAIR_PROMPT.format(reason=first)}")
            repaired = await self._complete("/api/generate", repair, on_chunk)
            return self._checked(repaired, format, model, result.metrics)

    async def chat(
        self,
        model: str,
        messages: Sequence[Message | Mapping[str, Any]],
        *,
        on_chunk: Callable[[Chunk], object] | None = None,
        **params: Unpack[ChatParams],
    ) -> Result:
        """Chat and return the whole answer (see :meth:`generate` for ``stream``/``format``)."""
        format = params.get("format")
        check_format(format)
        body = chat_body(model, messages, params)
        result = await self._complete("/api/chat", body, on_chunk)
        if not format:
            return result
        try:
            result.data = check_structured(result.text, format)
            return result
        except ValueError as first:
            repair_messages = [
                *body["messages"],
                {"role": "assistant", "content": result.text},
                {"role": "user", "content": REPAIR_PROMPT.format(reason=first)},
            ]
            repaired = await self._complete(
                "/api/chat", dict(body, messages=repair_messages), on_chunk
            )
            return self._checked(repaired, format, model, result.metrics)

    def stream_generate(
        self, model: str, prompt: str, **params: Unpack[GenerateParams]
    ) -> ResponseStream:
        """``async with client.stream_generate(m, p) as s: async for chunk in s: ...``;
        then ``s.result``. Retries happen only before the first chunk."""
        check_params("stream_generate", params, GENERATE_KEYS)
        params["stream"] = True
        fmt = params.get("format")
        check_format(fmt)
        body = generate_body(model, prompt, params)
        return ResponseStream(self, "/api/generate", body, retries=True, fmt=fmt)

    def stream_chat(
        self,
        model: str,
        messages: Sequence[Message | Mapping[str, Any]],
        **params: Unpack[ChatParams],
    ) -> ResponseStream:
        """Like :meth:`stream_generate`, for chat."""
        check_params("stream_chat", params, CHAT_KEYS)
        params["stream"] = True
        fmt = params.get("format")
        check_format(fmt)
        body = chat_body(model, messages, params)
        return ResponseStream(self, "/api/chat", body, retries=True, fmt=fmt)

    async def preload(self, model: str, keep_alive: float | str | None = None) -> Result:
        """Load a model into memory now (an empty prompt), so the next call is warm."""
        body: dict[str, Any] = {"model": model}
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        return await self._complete("/api/generate", body, None)

    async def unload(self, model: str) -> Result:
        """Free the model's memory now (``keep_alive: 0``)."""
        return await self._complete("/api/generate", {"model": model, "keep_alive": 0}, None)

    def _checked(self, result: Result, fmt: Format, model: str, earlier: Metrics) -> Result:
        result.metrics.attempts += earlier.attempts
        result.metrics.queue_wait_s += earlier.queue_wait_s
        try:
            result.data = check_structured(result.text, fmt)
        except ValueError as again:
            raise InvalidStructuredOutput(model, str(again), result.text) from None
        return result

    async def _complete(
        self, path: str, body: dict[str, Any], on_chunk: Callable[[Chunk], object] | None
    ) -> Result:
        deadline = self._deadline()
        content = encode(body)
        attempts = 0
        queue_wait = 0.0
        started = time.perf_counter()

        async def attempt() -> Result:
            nonlocal attempts, queue_wait
            attempts += 1
            stream = ResponseStream(
                self, path, body, retries=False, content=content, deadline=deadline
            )
            delivered = False
            try:
                async with stream:
                    if on_chunk is None:
                        await stream.consume()
                    else:
                        async for chunk in stream:
                            delivered = True
                            on_chunk(chunk)
            except OllamaError as exc:
                if delivered:
                    exc.retryable = False  # the caller saw tokens: a retry would repeat them
                raise
            finally:
                queue_wait += stream.queue_wait
            assert stream.result is not None
            return stream.result

        result = await self._retrier.run(deadline, attempt)
        result.metrics.attempts = attempts
        result.metrics.queue_wait_s = queue_wait
        result.metrics.wall_s = time.perf_counter() - started
        return result

    # -- other endpoints -----------------------------------------------------------------
    # -- other endpoints -----------------------------------------------------------------
    async def ping(self) -> bool:
        """True when ``GET /`` answers "Ollama is running"."""
        response = await self._request("GET", "/", None, deadline_name="read")
        return "Ollama is running" in response.text

    async def version(self) -> str:
        return str((await self._json("GET", "/api/version")).get("version", ""))

    async def list_models(self) -> list[ModelInfo]:
        """Pulled models (/api/tags)."""
        data = await self._json("GET", "/api/tags")
        return [ModelInfo.from_wire(m) for m in data.get("models") or []]

    async def running_models(self) -> list[ModelInfo]:
        """Models loaded in memory now (/api/ps)."""
        data = await self._json("GET", "/api/ps")
        return [ModelInfo.from_wire(m) for m in data.get("models") or []]

    async def show(self, model: str) -> dict[str, Any]:
        return await self._json("POST", "/api/show", {"model": model}, model=model)

    async def embed(
        self,
        model: str,
        input: str | Sequence[str],
        *,
        options: Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        truncate: bool | None = None,
        dimensions: int | None = None,
    ) -> Embeddings:
        body: dict[str, Any] = {
            "model": model,
            "input": input if isinstance(input, str) else list(input),
        }
        for key, value in (
            ("options", options),
            ("keep_alive", keep_alive),
            ("truncate", truncate),
            ("dimensions", dimensions),
        ):
            if value is not None:
                body[key] = dict(value) if isinstance(value, Mapping) else value
        data = await self._json(
            "POST", "/api/embed", body, model=model, deadline_name="load", admit=True
        )
        return Embeddings(
            data.get("model", model), data.get("embeddings") or [], Metrics.from_final(data)
        )

    async def _json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        model: str | None = None,
        deadline_name: str = "read",
        admit: bool = False,
    ) -> dict[str, Any]:
        response = await self._request(
            method, path, body, model=model, deadline_name=deadline_name, admit=admit
        )
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise OllamaProtocolError(
                f"Ollama at {self.url} answered {path} with something that is not JSON: "
                "is it an Ollama server?",
                url=self.url,
            ) from None
        if not isinstance(data, dict):
            raise OllamaProtocolError(
                f"Ollama at {self.url} answered {path} with {type(data).__name__}, not an object",
                url=self.url,
            )
        return data

    async def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        model: str | None = None,
        deadline_name: str = "read",
        admit: bool = False,
    ) -> httpx.Response:
        """A request with a whole body: breaker, retries, deadlines; ``admit`` takes an
        in-flight slot (for calls that make the model work, like embed)."""
        deadline = self._deadline()
        content = encode(body) if body is not None else None
        limit_s = getattr(self.timeouts, deadline_name)

        async def attempt() -> httpx.Response:
            if not self.breaker.allow():
                raise CircuitOpen(self.url, self.breaker.failures, self.breaker.retry_in())
            loop = asyncio.get_running_loop()
            slot = False
            name = "total"
            try:
                if admit:
                    async with asyncio.timeout_at(finite(deadline)):
                        await self.admission.acquire(self.url)
                    slot = True
                limit, name = earliest(loop.time(), limit_s, deadline_name, deadline)
                async with asyncio.timeout_at(limit):
                    response = await self._http.request(method, path, content=content)
                if response.status_code >= 400:
                    raise status_error(
                        self.url,
                        response.status_code,
                        response.text,
                        model,
                        response.headers.get("server", ""),
                    )
            except TimeoutError:
                error: OllamaError = OllamaTimeout(
                    self.url, name, span(name, limit_s, self.timeouts)
                )
                self.breaker.record_failure()
                raise error from None
            except httpx.HTTPError as exc:
                error = transport_error(self.url, self.timeouts, exc)
                self.breaker.record_failure()
                raise error from None
            except OllamaError as exc:
                if counts_against_server(exc):
                    self.breaker.record_failure()
                else:
                    self.breaker.release()
                raise
            except BaseException:
                self.breaker.release()
                raise
            finally:
                if slot:
                    self.admission.release()
            self.breaker.record_success()
            self.server = response.headers.get("server", "")
            return response

        return await self._retrier.run(deadline, attempt)

    # -- shared plumbing -----------------------------------------------------------------
    def _deadline(self) -> float:
        return total_deadline(asyncio.get_running_loop().time(), self.timeouts)
