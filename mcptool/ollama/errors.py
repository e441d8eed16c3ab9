"""Typed Ollama errors, each with a message a person can act on.

Every error subclasses :class:`mcptool.errors.McptoolError`, so the CLI prints it as one
line. ``retryable`` says whether the client's retry policy may try the call again.
"""

from __future__ import annotations

from typing import ClassVar

from mcptool.errors import McptoolError


class OllamaError(McptoolError):
    """Anything that went wrong talking to Ollama."""

    retryable: bool = False

    def __init__(self, message: str, *, url: str = "", model: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.model = model


class OllamaUnreachable(OllamaError):
    """No TCP connection, or the connection closed before any answer."""

    retryable = True

    def __init__(self, url: str, detail: str = "") -> None:
        why = f" ({detail})" if detail else ""
        super().__init__(f"cannot reach Ollama at {url}{why}: is `ollama serve` running?", url=url)


MCPTOOL_SERVER = "mcptool-"
"""How the ``Server`` header of mcptool's own Ollama servers begins (``model serve``, the
simulator); a real Ollama sends none."""


def can_pull(server: str) -> bool:
    """Whether the server that sent this ``Server`` header is a real Ollama, which can
    pull models (``ollama pull``); mcptool's own serve only what they were started with."""
    return not server.startswith(MCPTOOL_SERVER)


class ModelNotFound(OllamaError):
    """404 for the model. A real Ollama can pull it; mcptool's own servers cannot, and
    their error says, after ``not found: ``, which models they have and how to serve the
    one asked for: that advice is passed on instead of ``ollama pull``. The user's to fix,
    like a bad argument: exit code 2."""

    exit_code = 2

    def __init__(self, model: str, url: str = "", *, server: str = "", detail: str = "") -> None:
        advice = detail.partition(" not found: ")[2]
        if not can_pull(server) and advice:
            message = f"model {model} is not on the server at {url}: {advice}"
        else:
            message = f"model {model} is not pulled: run `ollama pull {model}`"
        super().__init__(message, url=url, model=model)


class OllamaBusy(OllamaError):
    """Ollama answered 503: its queue (OLLAMA_MAX_QUEUE) is full."""

    retryable = True

    def __init__(self, url: str, detail: str = "") -> None:
        super().__init__(
            f"Ollama at {url} is busy ({detail or 'server busy'}): send fewer requests at once, "
            "or raise OLLAMA_NUM_PARALLEL / OLLAMA_MAX_QUEUE on the server",
            url=url,
        )


class OllamaBackpressure(OllamaError):
    """The client's own wait queue is full: the caller sends faster than Ollama answers."""

    def __init__(self, url: str, in_flight: int, waiting: int) -> None:
        super().__init__(
            f"too many requests for Ollama at {url}: {in_flight} in flight and {waiting} "
            "waiting already; slow down or raise max_waiting",
            url=url,
        )
        self.in_flight = in_flight
        self.waiting = waiting


class OllamaTimeout(OllamaError):
    """A deadline passed; ``deadline`` names which: connect, load, read or total."""

    HINTS: ClassVar[dict[str, str]] = {
        "connect": "is the host right and the port open?",
        "load": "the model may still be loading: raise the load timeout",
        "read": "the model stopped sending tokens: raise the read timeout or check the server",
        "total": "the whole call took too long: raise the total timeout or ask for less output",
        "queue": "too many requests ahead in the client's queue",
    }

    def __init__(self, url: str, deadline: str, seconds: float, *, retryable: bool = False) -> None:
        hint = self.HINTS.get(deadline, "")
        super().__init__(
            f"Ollama at {url} timed out: {deadline} deadline of {seconds:g}s passed; {hint}",
            url=url,
        )
        self.deadline = deadline
        self.seconds = seconds
        self.retryable = retryable


class OllamaHTTPError(OllamaError):
    """Any other error status, with Ollama's own message."""

    def __init__(self, url: str, status: int, detail: str, *, model: str | None = None) -> None:
        super().__init__(f"Ollama at {url} answered {status}: {detail}", url=url, model=model)
        self.status = status
        self.detail = detail
        self.retryable = status in RETRYABLE_STATUSES


RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class OllamaBadRequest(OllamaHTTPError):
    """400: the request itself is wrong (bad options, bad format, model that cannot do it)."""


class OllamaStreamError(OllamaError):
    """A stream ended badly after it began: an ``{"error"}`` line, or the connection dropped.

    ``partial`` holds the text received before the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        model: str | None,
        partial: str = "",
        chunks: int = 0,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, url=url, model=model)
        self.partial = partial
        self.chunks = chunks
        self.retryable = retryable


class InvalidStructuredOutput(OllamaError):
    """The answer was not JSON, or did not match the schema, even after one repair retry."""

    def __init__(self, model: str, reason: str, raw: str) -> None:
        preview = raw if len(raw) <= 80 else raw[:77] + "..."
        super().__init__(
            f"model {model} gave no valid structured output after a repair retry: {reason} "
            f"(answer began {preview!r}); try a larger model or a simpler schema",
            model=model,
        )
        self.reason = reason
        self.raw = raw


class CircuitOpen(OllamaError):
    """The breaker is open: recent calls failed, so this one is refused without trying."""

    def __init__(self, url: str, failures: int, retry_in: float) -> None:
        super().__init__(
            f"Ollama at {url} failed {failures} times in a row; not calling it for another "
            f"{retry_in:.1f}s (circuit open): check the server",
            url=url,
        )
        self.failures = failures
        self.retry_in = retry_in


class OllamaProtocolError(OllamaError):
    """The answer was not what Ollama sends (not JSON, or missing fields)."""


def counts_against_server(exc: BaseException) -> bool:
    """Failures that say the server is unwell (for the breaker), not that the call was bad."""
    if isinstance(exc, (OllamaUnreachable, OllamaStreamError, OllamaProtocolError)):
        return True
    if isinstance(exc, OllamaTimeout):
        return exc.deadline != "total"
    return (isinstance(exc, OllamaHTTPError) and exc.status >= 500) or isinstance(exc, OllamaBusy)
