"""Async client for a local Ollama server: deadlines, retries, a bound, a circuit breaker.

``async with OllamaClient("http://127.0.0.1:11434") as ollama:`` then
``await ollama.generate("llama3.2", "Why is the sky blue?")``; see docs/OLLAMA.md.
"""

from mcptool.ollama.admission import Admission
from mcptool.ollama.breaker import BreakerState, CircuitBreaker
from mcptool.ollama.client import OllamaClient
from mcptool.ollama.deadlines import Timeouts
from mcptool.ollama.errors import (
    CircuitOpen,
    InvalidStructuredOutput,
    ModelNotFound,
    OllamaBackpressure,
    OllamaBadRequest,
    OllamaBusy,
    OllamaError,
    OllamaHTTPError,
    OllamaProtocolError,
    OllamaStreamError,
    OllamaTimeout,
    OllamaUnreachable,
    can_pull,
)
from mcptool.ollama.models import Chunk, Embeddings, Message, Metrics, ModelInfo, Result
from mcptool.ollama.request import ChatParams, GenerateParams
from mcptool.ollama.retry import RetryPolicy
from mcptool.ollama.stream import ResponseStream
from mcptool.ollama.structured import check_structured
from mcptool.ollama.transport import DEFAULT_URL, normalize_url

__all__ = [
    "DEFAULT_URL",
    "Admission",
    "BreakerState",
    "ChatParams",
    "Chunk",
    "CircuitBreaker",
    "CircuitOpen",
    "Embeddings",
    "GenerateParams",
    "InvalidStructuredOutput",
    "Message",
    "Metrics",
    "ModelInfo",
    "ModelNotFound",
    "OllamaBackpressure",
    "OllamaBadRequest",
    "OllamaBusy",
    "OllamaClient",
    "OllamaError",
    "OllamaHTTPError",
    "OllamaProtocolError",
    "OllamaStreamError",
    "OllamaTimeout",
    "OllamaUnreachable",
    "ResponseStream",
    "Result",
    "RetryPolicy",
    "Timeouts",
    "can_pull",
    "check_structured",
    "normalize_url",
]
