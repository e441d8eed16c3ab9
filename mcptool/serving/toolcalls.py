"""Tool calls in a model's text, read the way Ollama reads them (sans-IO: text in, calls out).

Qwen2.5's chat template asks for each call as ``<tool_call>{"name": ..., "arguments":
{...}}</tool_call>``. llama.cpp (the xllamacpp build pinned by the ``local-model`` extra)
renders the offered tools through that template but hands the model's calls back as plain
text: no ``tool_calls`` in its answer, even with ``tool_choice: required`` (measured, see
docs/OLLAMA.md). So the server reads the calls itself, by Ollama's rules (its ``tools``
parser): an answer that starts with the template's tag or with a JSON object is held back
while it arrives; at its end every object in it with a string ``name`` and an object
``arguments`` is a call; text before a tag mid-answer is shown as text. One form more than
Ollama takes: the object in a ``json`` code fence, which is how the packaged 0.5B model
writes most of its calls (its text carried no tag in any answer measured). Unlike Ollama,
held text in which no call parses is given back as text, not dropped, so that nothing the
model wrote is lost.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["QWEN_TAG", "ToolCallReader", "calls_in", "calls_of"]

QWEN_TAG = "<tool_call>"
"""The tag Qwen2.5 (and other Hermes-style templates) put before each call."""

_DECODER = json.JSONDecoder()


def calls_in(text: str) -> list[dict[str, Any]]:
    """Every call in ``text``, in Ollama's ``message.tool_calls`` shape (arguments an object)."""
    calls: list[dict[str, Any]] = []
    at = text.find("{")
    while at != -1:
        try:
            value, end = _DECODER.raw_decode(text, at)
        except ValueError:
            at = text.find("{", at + 1)
            continue
        calls.extend(calls_of(value))
        at = text.find("{", end)
    return calls


def calls_of(value: Any) -> list[dict[str, Any]]:
    """The calls in one decoded JSON value: the value itself and any object nested in it
    (as Ollama looks); ``arguments`` may be an object or, as OpenAI sends it, JSON text."""
    found: list[dict[str, Any]] = []
    if isinstance(value, list):
        for item in value:
            found.extend(calls_of(item))
    elif isinstance(value, dict):
        name, arguments = value.get("name"), value.get("arguments")
        if isinstance(arguments, str):  # OpenAI's shape: the arguments as JSON text
            try:
                arguments = json.loads(arguments)
            except ValueError:
                arguments = None
        if isinstance(name, str) and name and isinstance(arguments, dict):
            return [{"function": {"name": name, "arguments": arguments}}]
        for item in value.values():
            found.extend(calls_of(item))
    return found


class ToolCallReader:
    """One answer's text as it streams: :meth:`feed` gives back the text that can be shown
    now and holds back what may be a call; :meth:`end` gives the calls and the text left."""

    def __init__(self, tag: str = QWEN_TAG) -> None:
        self.tag = tag
        self._held = ""
        self._mode = "start"  # start: nothing shown yet; text: shown; calls: holding a call

    def feed(self, text: str) -> str:
        self._held += text
        if self._mode == "calls":
            return ""
        if self._mode == "start":
            begun = self._held.lstrip()
            opens = _opens_call(begun, self.tag)
            if opens is None:
                return ""  # blank so far, or a tag or fence not yet complete
            if opens:
                self._mode = "calls"
                return ""
            self._mode = "text"
        return self._text()

    def _text(self) -> str:
        """In text mode: all but what may be the start of a tag; from a tag on, calls."""
        held = self._held
        if not self.tag:
            self._held = ""
            return held
        found = held.find(self.tag)
        if found != -1:
            self._mode, self._held = "calls", held[found:]
            return held[:found]
        keep = _overlap(held, self.tag)
        self._held = held[len(held) - keep :]
        return held[: len(held) - keep]

    def end(self) -> tuple[list[dict[str, Any]], str]:
        held, self._held = self._held, ""
        if self._mode != "calls":
            return [], held
        calls = calls_in(held)
        return (calls, "") if calls else ([], held)


def _opens_call(begun: str, tag: str) -> bool | None:
    """Whether an answer beginning so is a call: the tag, a JSON object, or (as
    llama.cpp's own Hermes parser takes it, and the 0.5B Qwen coder writes it) a JSON
    object in a ``json`` code fence; None while that cannot be told yet."""
    if not begun or (tag and tag.startswith(begun)):
        return None
    if begun.startswith("{") or (tag and begun.startswith(tag)):
        return True
    if not begun.startswith("```"):
        return None if "```".startswith(begun) else False
    fence, newline, after = begun.partition("\n")
    if not newline:
        return None if len(fence) <= len("```json") else False
    if fence[3:].strip().lower() not in ("", "json"):
        return False  # a code block of something else
    after = after.lstrip()
    return None if not after else after.startswith("{")


def _overlap(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` begin ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
