"""HTTP statuses and transport failures become the typed error a person can act on."""

from __future__ import annotations

import json

import httpx
import pytest

from mcptool.ollama import (
    ModelNotFound,
    OllamaBadRequest,
    OllamaBusy,
    OllamaHTTPError,
    OllamaTimeout,
    OllamaUnreachable,
    Timeouts,
)
from mcptool.ollama.transport import status_error, transport_error

URL = "http://127.0.0.1:11434"


@pytest.mark.parametrize(
    ("status", "text", "kind", "retryable"),
    [
        (
            404,
            '{"error":"model \\"qwen3\\" not found, try pulling it first"}',
            ModelNotFound,
            False,
        ),
        (503, '{"error":"server busy"}', OllamaBusy, True),
        (400, '{"error":"invalid format"}', OllamaBadRequest, False),
        (500, "plain text, not JSON", OllamaHTTPError, True),
        (405, "405 method not allowed", OllamaHTTPError, False),  # not an Ollama server
    ],
)
def test_a_status_becomes_its_typed_error(
    status: int, text: str, kind: type[Exception], retryable: bool
) -> None:
    error = status_error(URL, status, text, "qwen3")
    assert type(error) is kind
    assert error.retryable is retryable


@pytest.mark.parametrize(
    ("exc", "kind", "deadline", "retryable"),
    [
        (httpx.ConnectTimeout("t"), OllamaTimeout, "connect", True),
        (httpx.PoolTimeout("t"), OllamaTimeout, "connect", True),
        (httpx.ReadTimeout("t"), OllamaTimeout, "read", False),
        (httpx.ConnectError("refused"), OllamaUnreachable, None, True),
        (httpx.RemoteProtocolError("closed"), OllamaUnreachable, None, True),
    ],
)
def test_a_transport_failure_becomes_its_typed_error(
    exc: httpx.HTTPError, kind: type[Exception], deadline: str | None, retryable: bool
) -> None:
    error = transport_error(URL, Timeouts(connect=2.0, read=7.0), exc)
    assert type(error) is kind
    assert error.retryable is retryable
    if deadline is not None:
        assert isinstance(error, OllamaTimeout)
        assert error.deadline == deadline


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("", "model qwen3 is not pulled: run `ollama pull qwen3`"),  # Ollama sends no Server
        (
            "mcptool-model-serve/0.1.0",
            f"model qwen3 is not on the server at {URL}: mcptool model serve has only "
            "q:0.5b here; ask for it",
        ),
    ],
)
def test_a_missing_model_gets_the_advice_of_the_server_that_answered(
    server: str, message: str
) -> None:
    detail = "model 'qwen3' not found: mcptool model serve has only q:0.5b here; ask for it"
    error = status_error(URL, 404, json.dumps({"error": detail}), "qwen3", server)
    assert type(error) is ModelNotFound
    assert str(error) == message
