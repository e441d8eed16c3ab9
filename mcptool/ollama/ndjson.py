"""Ollama's streamed answers: NDJSON (one JSON object per line) over a chunked body.

:class:`LineSplitter` is the sans-IO part (bytes in pieces of any size in, whole lines
out), :func:`parse_object` turns one line into one object, :func:`ndjson_lines` puts the
splitter on an httpx response.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx


class LineSplitter:
    """Non-empty lines of an NDJSON byte stream: blank lines are tolerated, and so is a
    last line without its newline (given by :meth:`end`)."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        if self._pending:
            data = self._pending + data
        *lines, self._pending = data.split(b"\n")
        return [line for line in lines if line.strip()]

    def end(self) -> list[bytes]:
        pending, self._pending = self._pending, b""
        return [pending] if pending.strip() else []


def parse_object(line: bytes) -> dict[str, Any]:
    """One line as a JSON object; ValueError says what came instead."""
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"a line that is not JSON: {line[:60]!r}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{data!r}, not an object")
    return data


async def ndjson_lines(response: httpx.Response) -> AsyncIterator[bytes]:
    """The non-empty lines of a response's NDJSON body, as they arrive."""
    splitter = LineSplitter()
    # Ollama does not compress; skip httpx's decoder layers unless the body is encoded.
    identity = response.headers.get("content-encoding", "identity") == "identity"
    chunks = response.aiter_raw() if identity else response.aiter_bytes()
    async for data in chunks:
        for line in splitter.feed(data):
            yield line
    for line in splitter.end():
        yield line
