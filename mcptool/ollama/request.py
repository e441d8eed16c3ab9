"""The generate and chat parameters, defined once, and the JSON body built from them.

:class:`GenerateParams` and :class:`ChatParams` are the keyword arguments of
``generate``/``stream_generate`` and ``chat``/``stream_chat`` (typed with ``Unpack``);
the set of accepted names and the wire body both come from them, so a new Ollama
parameter is one line here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from mcptool.ollama.models import Message
from mcptool.ollama.structured import Format


class CommonParams(TypedDict, total=False):
    """What generate and chat share. None (or an empty collection) means "not sent"."""

    format: Format  # "json" or a JSON schema; "" or None for free text
    options: Mapping[str, Any] | None  # num_ctx, num_gpu, num_thread, temperature, seed...
    keep_alive: float | str | None  # how long the model stays loaded after the call
    think: bool | str | None
    extra: Mapping[str, Any] | None  # merged into the body last, for parameters not here
    stream: bool  # the wire mode; True (the default) lets the read deadline work


class GenerateParams(CommonParams, total=False):
    system: str | None
    images: Sequence[str] | None  # base64
    raw: bool | None
    context: Sequence[int] | None


class ChatParams(CommonParams, total=False):
    tools: Sequence[Mapping[str, Any]] | None


GENERATE_KEYS: tuple[str, ...] = tuple(GenerateParams.__annotations__)
CHAT_KEYS: tuple[str, ...] = tuple(ChatParams.__annotations__)


def check_params(caller: str, params: Mapping[str, Any], accepted: Sequence[str]) -> None:
    """Raise TypeError, as Python would for a function with these keywords."""
    unknown = set(params) - set(accepted)
    if unknown:
        raise TypeError(f"{caller}() got unexpected keyword arguments: {sorted(unknown)}")


def generate_body(model: str, prompt: str, params: GenerateParams) -> dict[str, Any]:
    check_params("generate", params, GENERATE_KEYS)
    return _with_params({"model": model, "prompt": prompt}, params, GENERATE_KEYS)


def chat_body(
    model: str, messages: Sequence[Message | Mapping[str, Any]], params: ChatParams
) -> dict[str, Any]:
    check_params("chat", params, CHAT_KEYS)
    body = {"model": model, "messages": [dict(m) for m in messages]}
    return _with_params(body, params, CHAT_KEYS)


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _with_params(
    body: dict[str, Any], params: Mapping[str, Any], keys: Sequence[str]
) -> dict[str, Any]:
    for key in keys:
        value = params.get(key)
        if value is None or key == "extra":
            continue
        if key == "stream":
            if not value:  # streaming is Ollama's default: say only when it is off
                body["stream"] = False
        elif isinstance(value, Mapping):
            if value:
                body[key] = dict(value)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            if value:
                body[key] = [dict(v) if isinstance(v, Mapping) else v for v in value]
        elif value != "" or key != "format":  # format "" is free text, as in Ollama
            body[key] = value
    extra = params.get("extra")
    if extra:
        body.update(extra)
    return body
