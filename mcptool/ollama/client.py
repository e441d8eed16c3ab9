"""An async Ollama client a gateway can trust: deadlines, retries, a bound, a breaker.

One pooled ``httpx.AsyncClient`` per :class:`OllamaClient`. Each call:

1. asks the circuit breaker (refused at once while the server keeps failing);
2. takes an in-flight slot, or waits in a bounded queue, or raises backpressure;
3. sends the request and waits for the first chunk under the *load* deadline (queue at
   the server, cold model load, prompt evaluation: Ollama sends headers only with the
   first chunk), then for each next chunk under the *read* deadline; the *connect*
   deadline bounds the TCP connect and the *total* one the whole call, retries included;
4. retries connection failures, 503 and other retryable 5xx with exponential backoff
   and full jitter (tenacity), never a 4xx, never a load or read timeout (a retry would
   restart a slow model load from zero) and never after tokens reached the caller;
5. closes the HTTP stream on any early exit or cancellation, which makes Ollama stop
   generating.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
import jsonschema
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from mcptool.errors import UsageError
from mcptool.ollama.admission import Admission
from mcptool.ollama.breaker import CircuitBreaker
from mcptool.ollama.errors import (
    CircuitOpen,
    InvalidStructuredOutput,
    ModelNotFound,
    OllamaBadRequest,
    OllamaBusy,
    OllamaError,
    OllamaHTTPError,
    OllamaProtocolError,
    OllamaStreamError,
    OllamaTimeout,
    OllamaUnreachable,
)
from mcptool.ollama.models import Chunk, Embeddings, Message, Metrics, ModelInfo, Result

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:11434"
Format = Literal["", "json"] | Mapping[str, Any] | None
REPAIR_PROMPT = (
    "Your previous answer was not valid: {reason}. Answer again with only a JSON value "
    "that matches the requested schema, and nothing else."
)


def normalize_url(url: str | None = None) -> str:
    """``OLLAMA_HOST``-style addresses (``host``, ``host:port``, ``http://host``) to a URL."""
    url = (url or os.environ.get("OLLAMA_HOST") or DEFAULT_URL).strip()
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # a server's bind-all address; connect over loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if parts.scheme == "https" else 11434)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{host}:{port}{path}"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Deadlines in seconds (None: none). ``load`` is until the first chunk, which on a
    cold model includes loading it; ``read`` is between chunks after that."""

    connect: float | None = 5.0
    load: float | None = 300.0
    read: float | None = 60.0
    total: float | None = 900.0
    write: float | None = 30.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; sleep random(0, min(cap, base * 2**n)) between them."""

    attempts: int = 3
    base: float = 0.5
    cap: float = 8.0


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, OllamaError) and exc.retryable


def _counts_against_server(exc: BaseException) -> bool:
    """Failures that say the server is unwell (for the breaker), not that the call was bad."""
    if isinstance(exc, (OllamaUnreachable, OllamaStreamError, OllamaProtocolError)):
        return True
    if isinstance(exc, OllamaTimeout):
        return exc.deadline != "total"
    return (isinstance(exc, OllamaHTTPError) and exc.status >= 500) or isinstance(exc, OllamaBusy)


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _check_format(fmt: Format) -> None:
    """Refuse a bad ``format`` before sending anything (a caller's bug, not the model's)."""
    if fmt is None or fmt in ("", "json"):
        return
    if not isinstance(fmt, Mapping):
        raise UsageError(f'format must be "json" or a JSON schema (a mapping), not {fmt!r}')
    try:
        _validator(json.dumps(fmt, sort_keys=True))
    except jsonschema.SchemaError as exc:
        raise UsageError(f"format is not a valid JSON schema: {exc.message}") from None
    except TypeError as exc:
        raise UsageError(f"format is not a JSON schema: {exc}") from None


def check_structured(text: str, fmt: Format) -> Any:
    """Parse a structured answer; raise ValueError with a short reason if it is not valid."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at char {exc.pos})") from None
    if isinstance(fmt, Mapping):
        error = jsonschema.exceptions.best_match(
            _validator(json.dumps(fmt, sort_keys=True)).iter_errors(data)
        )
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the answer"
            raise ValueError(f"{where}: {error.message}")
    return data


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
        t = self.timeouts
        self._http = httpx.AsyncClient(
            base_url=self.url,
            # Reads are bounded by our own load/read deadlines (per chunk, not per socket
            # read); httpx bounds connect, write and the wait for a pooled connection.
            timeout=httpx.Timeout(connect=t.connect, read=None, write=t.write, pool=t.connect),
            # httpcore scans every pooled connection for every idle one on each request
            # (O(idle x all)); past a few idle connections that costs more than opening a
            # new one, so keep at most 8 alive (Ollama rarely runs more in parallel).
            limits=httpx.Limits(
                max_connections=max_in_flight + 4,
                max_keepalive_connections=min(max_in_flight + 2, 8),
                keepalive_expiry=30.0,
            ),
            headers={
                "content-type": "application/json",
                "accept": "application/x-ndjson, application/json",
                "user-agent": "mcptool-ollama",
                **(headers or {}),
            },
        )
        self._wait = wait_random_exponential(multiplier=self.retry.base, max=self.retry.cap)
        self._stop_attempts = stop_after_attempt(self.retry.attempts)
        self._retry_if = retry_if_exception(_retryable)

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
        system: str | None = None,
        format: Format = None,
        options: Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        images: Sequence[str] | None = None,
        think: bool | str | None = None,
        raw: bool | None = None,
        context: Sequence[int] | None = None,
        extra: Mapping[str, Any] | None = None,
        stream: bool = True,
        on_chunk: Callable[[Chunk], object] | None = None,
    ) -> Result:
        """Generate a completion and return it whole.

        ``stream`` is the wire mode: streamed (default) lets the read deadline catch a
        model that stops mid-answer; ``False`` asks Ollama for one object, bounded only
        by the load and total deadlines. ``on_chunk`` sees pieces as they come.
        With ``format``, ``result.data`` is the parsed (and schema-checked) answer,
        with one repair retry; else :class:`InvalidStructuredOutput`.
        """
        _check_format(format)
        body = _generate_body(
            model,
            prompt,
            system,
            format,
            options,
            keep_alive,
            images,
            think,
            raw,
            context,
            extra,
            stream,
        )
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
        format: Format = None,
        options: Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        think: bool | str | None = None,
        extra: Mapping[str, Any] | None = None,
        stream: bool = True,
        on_chunk: Callable[[Chunk], object] | None = None,
    ) -> Result:
        """Chat and return the whole answer (see :meth:`generate` for ``stream``/``format``)."""
        _check_format(format)
        body = _chat_body(model, messages, format, options, keep_alive, tools, think, extra, stream)
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

    def stream_generate(self, model: str, prompt: str, **kwargs: Any) -> ResponseStream:
        """``async with client.stream_generate(m, p) as s: async for chunk in s: ...``;
        then ``s.result``. Retries happen only before the first chunk."""
        kwargs["stream"] = True
        fmt = kwargs.get("format")
        _check_format(fmt)
        body = _generate_body(model, prompt, **_generate_kwargs(kwargs))
        return ResponseStream(self, "/api/generate", body, retries=True, fmt=fmt)

    def stream_chat(
        self, model: str, messages: Sequence[Message | Mapping[str, Any]], **kwargs: Any
    ) -> ResponseStream:
        """Like :meth:`stream_generate`, for chat."""
        kwargs["stream"] = True
        fmt = kwargs.get("format")
        _check_format(fmt)
        body = _chat_body(model, messages, **_chat_kwargs(kwargs))
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
        content = _encode(body)
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

        result = await self._with_retries(deadline, attempt)
        result.metrics.attempts = attempts
        result.metrics.queue_wait_s = queue_wait
        result.metrics.wall_s = time.perf_counter() - started
        return result

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
        content = _encode(body) if body is not None else None
        limit_s = getattr(self.timeouts, deadline_name)

        async def attempt() -> httpx.Response:
            if not self.breaker.allow():
                raise CircuitOpen(self.url, self.breaker.failures, self.breaker.retry_in())
            loop = asyncio.get_running_loop()
            slot = False
            name = "total"
            try:
                if admit:
                    async with asyncio.timeout_at(_finite(deadline)):
                        await self.admission.acquire(self.url)
                    slot = True
                limit, name = _earliest(loop.time(), limit_s, deadline_name, deadline)
                async with asyncio.timeout_at(limit):
                    response = await self._http.request(method, path, content=content)
                if response.status_code >= 400:
                    raise self._status_error(response.status_code, response.text, model)
            except TimeoutError:
                error: OllamaError = OllamaTimeout(
                    self.url, name, _span(name, limit_s, self.timeouts)
                )
                self.breaker.record_failure()
                raise error from None
            except httpx.HTTPError as exc:
                error = self._transport_error(exc)
                self.breaker.record_failure()
                raise error from None
            except OllamaError as exc:
                if _counts_against_server(exc):
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
            return response

        return await self._with_retries(deadline, attempt)

    # -- shared plumbing -----------------------------------------------------------------
    def _deadline(self) -> float:
        total = self.timeouts.total
        return asyncio.get_running_loop().time() + total if total else float("inf")

    async def _with_retries(self, deadline: float, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, retried by the policy. The first try runs outside tenacity (the
        common case, success, then costs nothing); a retryable failure is handed to
        tenacity as its attempt 1, so its backoff and stops apply from there."""
        try:
            return await attempt()
        except OllamaError as exc:
            if not exc.retryable or self.retry.attempts < 2:
                raise
            first = exc
        replayed = False

        async def replay() -> T:
            nonlocal replayed
            if not replayed:
                replayed = True
                raise first
            return await attempt()

        return await self._retrying(deadline)(replay)

    def _retrying(self, deadline: float) -> AsyncRetrying:
        loop = asyncio.get_running_loop()

        def past_deadline(state: Any) -> bool:
            return loop.time() + state.upcoming_sleep >= deadline

        return AsyncRetrying(
            stop=self._stop_attempts | past_deadline,
            wait=self._wait,
            retry=self._retry_if,
            reraise=True,
        )

    def _status_error(self, status: int, text: str, model: str | None) -> OllamaError:
        try:
            detail = str(json.loads(text).get("error", text))
        except (json.JSONDecodeError, AttributeError):
            detail = text.strip()
        if status == 404 and model and "not found" in detail:
            return ModelNotFound(model, self.url)
        if status == 503:
            return OllamaBusy(self.url, detail)
        if status == 400:
            return OllamaBadRequest(self.url, status, detail, model=model)
        return OllamaHTTPError(self.url, status, detail, model=model)

    def _transport_error(self, exc: httpx.HTTPError) -> OllamaError:
        if isinstance(exc, httpx.ConnectTimeout):
            return OllamaTimeout(self.url, "connect", self.timeouts.connect or 0, retryable=True)
        if isinstance(exc, httpx.PoolTimeout):
            return OllamaTimeout(self.url, "connect", self.timeouts.connect or 0, retryable=True)
        if isinstance(exc, httpx.ConnectError):
            return OllamaUnreachable(self.url)
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return OllamaUnreachable(self.url, "connection closed before an answer")
        if isinstance(exc, httpx.TimeoutException):
            return OllamaTimeout(self.url, "read", self.timeouts.read or 0, retryable=False)
        return OllamaUnreachable(self.url, f"{type(exc).__name__}: {exc}")


class ResponseStream:
    """A streamed generate/chat answer: an async context manager and iterator of chunks.

    Leaving the ``async with`` (or cancelling the task) before the end closes the HTTP
    stream, and Ollama stops generating. ``result`` is set once the final chunk arrived.
    """

    def __init__(
        self,
        client: OllamaClient,
        path: str,
        body: dict[str, Any],
        *,
        retries: bool,
        fmt: Format = None,
        content: bytes | None = None,
        deadline: float | None = None,
    ) -> None:
        self._client = client
        self._path = path
        self._body = body
        self._content = content if content is not None else _encode(body)
        self._retries = retries
        self._fmt = fmt
        self._deadline = deadline
        self._chat = path == "/api/chat"
        self._model: str = body.get("model", "")
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[bytes] | None = None
        self._first: dict[str, Any] | None = None
        self._slot = False
        self._allowed = False
        self._reader: asyncio.Task[Any] | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._limit: float | None = None
        self._limit_name = "read"
        self._expired: str | None = None
        self._texts: list[str] = []
        self._thinking: list[str] = []
        self._tool_calls: list[dict[str, Any]] = []
        self._chunks = 0
        self._sent_at = 0.0
        self._first_at = 0.0
        self.queue_wait = 0.0
        self.attempts = 0
        self.result: Result | None = None

    # -- opening -------------------------------------------------------------------------
    async def __aenter__(self) -> ResponseStream:
        client = self._client
        if self._deadline is None:
            self._deadline = client._deadline()
        if self._retries:
            await client._with_retries(self._deadline, self._open)
        else:
            await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _open(self) -> None:
        client = self._client
        assert self._deadline is not None
        self.attempts += 1
        if not client.breaker.allow():
            raise CircuitOpen(client.url, client.breaker.failures, client.breaker.retry_in())
        self._allowed = True
        try:
            try:
                if client.admission.in_flight >= client.admission.max_in_flight:
                    async with asyncio.timeout_at(_finite(self._deadline)):
                        self.queue_wait += await client.admission.acquire(client.url)
                else:
                    self.queue_wait += await client.admission.acquire(client.url)
            except TimeoutError:
                raise OllamaTimeout(client.url, "total", client.timeouts.total or 0) from None
            self._slot = True
            loop = asyncio.get_running_loop()
            self._sent_at = loop.time()
            # A stream:false answer comes whole after the generation: only total bounds it.
            load_s = client.timeouts.load if self._body.get("stream", True) else None
            limit, name = _earliest(self._sent_at, load_s, "load", self._deadline)
            try:
                async with asyncio.timeout_at(limit):
                    request = client._http.build_request("POST", self._path, content=self._content)
                    response = await client._http.send(request, stream=True)
                    self._response = response
                    if response.status_code >= 400:
                        await response.aread()
                        raise client._status_error(response.status_code, response.text, self._model)
                    self._lines = _ndjson_lines(response)
                    self._first = await self._next_object()
            except TimeoutError:
                raise OllamaTimeout(
                    client.url, name, _span(name, load_s, client.timeouts)
                ) from None
            except httpx.HTTPError as exc:
                raise client._transport_error(exc) from None
            self._first_at = loop.time()
        except BaseException as exc:
            await self._finish(exc)
            raise

    async def _next_object(self) -> dict[str, Any]:
        assert self._lines is not None
        try:
            line = await self._lines.__anext__()
        except StopAsyncIteration:
            raise self._dropped("the stream ended without a final chunk") from None
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise OllamaProtocolError(
                f"Ollama at {self._client.url} sent a line that is not JSON: {line[:60]!r}",
                url=self._client.url,
                model=self._model,
            ) from None
        if not isinstance(data, dict):
            raise OllamaProtocolError(
                f"Ollama at {self._client.url} sent {data!r}, not an object",
                url=self._client.url,
                model=self._model,
            )
        error = data.get("error")
        if error:
            if self._chunks == 0 and not self._texts:
                raise OllamaStreamError(
                    f"model {self._model} failed before answering: {error}",
                    url=self._client.url,
                    model=self._model,
                )
            raise OllamaStreamError(
                f"model {self._model} failed mid-stream after {self._chunks} chunks: {error}",
                url=self._client.url,
                model=self._model,
                partial="".join(self._texts),
                chunks=self._chunks,
            )
        return data

    def _dropped(self, why: str) -> OllamaStreamError:
        return OllamaStreamError(
            f"connection to Ollama at {self._client.url} dropped mid-stream after "
            f"{self._chunks} chunks of model {self._model} ({why})",
            url=self._client.url,
            model=self._model,
            partial="".join(self._texts),
            chunks=self._chunks,
            retryable=True,
        )

    # -- reading -------------------------------------------------------------------------
    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> Chunk:
        data = await self._next_raw()
        if data is None:
            raise StopAsyncIteration
        if self._chat:
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

    async def consume(self) -> Result:
        """Read the stream to its end and return the result (no chunk objects made)."""
        while await self._next_raw() is not None:
            pass
        assert self.result is not None
        return self.result

    async def _next_raw(self) -> dict[str, Any] | None:
        if self.result is not None or self._lines is None:
            if self.attempts == 0:
                raise RuntimeError(
                    "open the stream first: `async with client.stream_generate(...) as stream:`"
                )
            return None
        if self._first is not None:
            data, self._first = self._first, None
        else:
            client = self._client
            assert self._deadline is not None
            task = asyncio.current_task()
            assert task is not None
            cancelling = task.cancelling()
            self._arm(task)
            try:
                data = await self._next_object()
            except asyncio.CancelledError as exc:
                name = self._expired
                if name is not None and task.uncancel() <= cancelling:
                    error: BaseException = OllamaTimeout(
                        client.url, name, _span(name, client.timeouts.read, client.timeouts)
                    )
                    await self._finish(error)
                    raise error from None
                await self._finish(exc)
                raise
            except httpx.HTTPError as exc:
                error = self._dropped(type(exc).__name__)
                await self._finish(error)
                raise error from None
            except BaseException as exc:
                await self._finish(exc)
                raise
            finally:
                self._reader = None
        self._chunks += 1
        if self._chat:
            message = data.get("message") or {}
            text = message.get("content", "")
            if message.get("tool_calls"):
                self._tool_calls.extend(message["tool_calls"])
            thinking = message.get("thinking")
        else:
            text = data.get("response", "")
            thinking = data.get("thinking")
        if text:
            self._texts.append(text)
        if thinking:
            self._thinking.append(thinking)
        if data.get("done"):
            self._complete(data)
            await self._finish(None)
        return data

    # The read deadline is checked by one timer per stream that re-arms itself, not by an
    # asyncio.timeout per chunk: that would schedule and cancel a timer for every token,
    # the largest per-chunk cost of this client.
    def _arm(self, task: asyncio.Task[Any]) -> None:
        loop = asyncio.get_running_loop()
        assert self._deadline is not None
        self._limit, self._limit_name = _earliest(
            loop.time(), self._client.timeouts.read, "read", self._deadline
        )
        self._reader = task
        if self._watch is None and self._limit is not None:
            self._watch = loop.call_at(self._limit, self._on_watch)

    def _on_watch(self) -> None:
        self._watch = None
        if self._reader is None or self._limit is None:
            return  # not waiting for a chunk now; the next wait arms a new timer
        loop = asyncio.get_running_loop()
        if loop.time() < self._limit:  # a chunk came since: wait for the current limit
            self._watch = loop.call_at(self._limit, self._on_watch)
            return
        self._expired = self._limit_name
        self._reader.cancel()

    def _complete(self, final: dict[str, Any]) -> None:
        metrics = Metrics.from_final(final)
        metrics.queue_wait_s = self.queue_wait
        metrics.first_chunk_s = self._first_at - self._sent_at
        metrics.attempts = self.attempts
        text = "".join(self._texts)
        self.result = Result(
            model=final.get("model", self._model),
            text=text,
            done_reason=final.get("done_reason", ""),
            metrics=metrics,
            created_at=final.get("created_at", ""),
            context=final.get("context"),
            thinking="".join(self._thinking),
            raw=final,
            tool_calls=self._tool_calls,
        )

    async def _finish(self, exc: BaseException | None) -> None:
        """Close the HTTP stream, free the slot, tell the breaker how it went (once)."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        response, self._response = self._response, None
        lines, self._lines = self._lines, None
        if response is not None:
            if exc is None and lines is not None:
                await self._drain(lines)
            await response.aclose()
        if self._slot:
            self._slot = False
            self._client.admission.release()
        if self._allowed:
            self._allowed = False
            breaker = self._client.breaker
            if exc is None:
                breaker.record_success()
            elif _counts_against_server(exc):
                breaker.record_failure()
            else:
                breaker.release()
        if exc is None and self._fmt and self.result is not None:
            try:
                self.result.data = check_structured(self.result.text, self._fmt)
            except ValueError as invalid:
                raise InvalidStructuredOutput(self._model, str(invalid), self.result.text) from None

    async def _drain(self, lines: AsyncIterator[bytes]) -> None:
        """Read the body's end (the chunked terminator) so the connection goes back to the
        pool: closing a response with unread bytes closes its connection."""
        try:
            # Ollama ends the body right after the final chunk; never wait long for it.
            async with asyncio.timeout(min(self._client.timeouts.read or 1.0, 1.0)):
                async for _line in lines:
                    pass
        except (TimeoutError, httpx.HTTPError):
            pass

    async def aclose(self) -> None:
        """Stop reading; if the answer is not complete, Ollama stops generating it."""
        if self._response is not None or self._slot or self._allowed:
            await self._finish(asyncio.CancelledError())


async def _ndjson_lines(response: httpx.Response) -> AsyncIterator[bytes]:
    """Non-empty lines of an NDJSON body (blank lines tolerated, a last line without \\n too)."""
    pending = b""
    # Ollama does not compress; skip httpx's decoder layers unless the body is encoded.
    identity = response.headers.get("content-encoding", "identity") == "identity"
    chunks = response.aiter_raw() if identity else response.aiter_bytes()
    async for data in chunks:
        if pending:
            data = pending + data
        *lines, pending = data.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def _earliest(
    now: float, seconds: float | None, name: str, deadline: float
) -> tuple[float | None, str]:
    """The sooner of a phase deadline and the total one (None: no deadline), and its name."""
    if seconds is not None and now + seconds < deadline:
        return now + seconds, name
    return (None if deadline == float("inf") else deadline), "total"


def _finite(deadline: float) -> float | None:
    return None if deadline == float("inf") else deadline


def _span(name: str, phase: float | None, timeouts: Timeouts) -> float:
    return float((timeouts.total if name == "total" else phase) or 0)


def _encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _common(
    body: dict[str, Any],
    format: Format,
    options: Mapping[str, Any] | None,
    keep_alive: float | str | None,
    think: bool | str | None,
    extra: Mapping[str, Any] | None,
    stream: bool,
) -> dict[str, Any]:
    if format:
        body["format"] = format if isinstance(format, str) else dict(format)
    if options:
        body["options"] = dict(options)
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    if think is not None:
        body["think"] = think
    if not stream:
        body["stream"] = False
    if extra:
        body.update(extra)
    return body


def _generate_body(
    model: str,
    prompt: str,
    system: str | None = None,
    format: Format = None,
    options: Mapping[str, Any] | None = None,
    keep_alive: float | str | None = None,
    images: Sequence[str] | None = None,
    think: bool | str | None = None,
    raw: bool | None = None,
    context: Sequence[int] | None = None,
    extra: Mapping[str, Any] | None = None,
    stream: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    if system is not None:
        body["system"] = system
    if images:
        body["images"] = list(images)
    if raw is not None:
        body["raw"] = raw
    if context:
        body["context"] = list(context)
    return _common(body, format, options, keep_alive, think, extra, stream)


def _chat_body(
    model: str,
    messages: Sequence[Message | Mapping[str, Any]],
    format: Format = None,
    options: Mapping[str, Any] | None = None,
    keep_alive: float | str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    think: bool | str | None = None,
    extra: Mapping[str, Any] | None = None,
    stream: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    if tools:
        body["tools"] = [dict(t) for t in tools]
    return _common(body, format, options, keep_alive, think, extra, stream)


_GENERATE_KEYS = (
    "system",
    "format",
    "options",
    "keep_alive",
    "images",
    "think",
    "raw",
    "context",
    "extra",
    "stream",
)
_CHAT_KEYS = ("format", "options", "keep_alive", "tools", "think", "extra", "stream")


def _generate_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    unknown = set(kwargs) - set(_GENERATE_KEYS)
    if unknown:
        raise TypeError(f"stream_generate() got unexpected arguments: {sorted(unknown)}")
    return kwargs


def _chat_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    unknown = set(kwargs) - set(_CHAT_KEYS)
    if unknown:
        raise TypeError(f"stream_chat() got unexpected arguments: {sorted(unknown)}")
    return kwargs
