"""A streamed generate/chat answer on the wire: open it under the breaker, the in-flight
bound and the load deadline; read its chunks under the read deadline; close it on any
early exit, which makes Ollama stop generating."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from mcptool.ollama.answer import Answer
from mcptool.ollama.deadlines import earliest, finite, span, total_deadline
from mcptool.ollama.errors import (
    CircuitOpen,
    InvalidStructuredOutput,
    OllamaProtocolError,
    OllamaStreamError,
    OllamaTimeout,
    counts_against_server,
)
from mcptool.ollama.models import Chunk, Result
from mcptool.ollama.ndjson import ndjson_lines, parse_object
from mcptool.ollama.request import encode
from mcptool.ollama.structured import Format, check_structured
from mcptool.ollama.transport import status_error, transport_error

if TYPE_CHECKING:
    from mcptool.ollama.client import OllamaClient


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
        self._content = content if content is not None else encode(body)
        self._retries = retries
        self._fmt = fmt
        self._deadline = deadline
        self._model: str = body.get("model", "")
        self._answer = Answer(self._model, chat=path == "/api/chat")
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
        self._sent_at = 0.0
        self._first_at = 0.0
        self.queue_wait = 0.0
        self.attempts = 0
        self.result: Result | None = None

    # -- opening -------------------------------------------------------------------------
    async def __aenter__(self) -> ResponseStream:
        client = self._client
        if self._deadline is None:
            self._deadline = total_deadline(asyncio.get_running_loop().time(), client.timeouts)
        if self._retries:
            await client._retrier.run(self._deadline, self._open)
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
                    async with asyncio.timeout_at(finite(self._deadline)):
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
            limit, name = earliest(self._sent_at, load_s, "load", self._deadline)
            try:
                async with asyncio.timeout_at(limit):
                    request = client._http.build_request("POST", self._path, content=self._content)
                    response = await client._http.send(request, stream=True)
                    self._response = response
                    if response.status_code >= 400:
                        await response.aread()
                        raise status_error(
                            client.url,
                            response.status_code,
                            response.text,
                            self._model,
                            response.headers.get("server", ""),
                        )
                    self._lines = ndjson_lines(response)
                    self._first = await self._next_object()
            except TimeoutError:
                raise OllamaTimeout(client.url, name, span(name, load_s, client.timeouts)) from None
            except httpx.HTTPError as exc:
                raise transport_error(client.url, client.timeouts, exc) from None
            self._first_at = loop.time()
        except BaseException as exc:
            await self._finish(exc)
            raise

    async def _next_object(self) -> dict[str, Any]:
        assert self._lines is not None
        url, model, answer = self._client.url, self._model, self._answer
        try:
            line = await self._lines.__anext__()
        except StopAsyncIteration:
            raise self._dropped("the stream ended without a final chunk") from None
        try:
            data = parse_object(line)
        except ValueError as exc:
            raise OllamaProtocolError(f"Ollama at {url} sent {exc}", url=url, model=model) from None
        error = data.get("error")
        if error:
            if answer.chunks == 0 and not answer.partial:
                raise OllamaStreamError(
                    f"model {model} failed before answering: {error}", url=url, model=model
                )
            raise OllamaStreamError(
                f"model {model} failed mid-stream after {answer.chunks} chunks: {error}",
                url=url,
                model=model,
                partial=answer.partial,
                chunks=answer.chunks,
            )
        return data

    def _dropped(self, why: str) -> OllamaStreamError:
        url, answer = self._client.url, self._answer
        return OllamaStreamError(
            f"connection to Ollama at {url} dropped mid-stream after "
            f"{answer.chunks} chunks of model {self._model} ({why})",
            url=url,
            model=self._model,
            partial=answer.partial,
            chunks=answer.chunks,
            retryable=True,
        )

    # -- reading -------------------------------------------------------------------------
    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> Chunk:
        data = await self._next_raw()
        if data is None:
            raise StopAsyncIteration
        return self._answer.chunk(data)

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
                        client.url, name, span(name, client.timeouts.read, client.timeouts)
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
        self._answer.add(data)
        if data.get("done"):
            self.result = self._answer.result(
                data,
                queue_wait_s=self.queue_wait,
                first_chunk_s=self._first_at - self._sent_at,
                attempts=self.attempts,
            )
            await self._finish(None)
        return data

    # The read deadline is checked by one timer per stream that re-arms itself, not by an
    # asyncio.timeout per chunk: that would schedule and cancel a timer for every token,
    # the largest per-chunk cost of this client.
    def _arm(self, task: asyncio.Task[Any]) -> None:
        loop = asyncio.get_running_loop()
        assert self._deadline is not None
        self._limit, self._limit_name = earliest(
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

    # -- closing -------------------------------------------------------------------------
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
            elif counts_against_server(exc):
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
