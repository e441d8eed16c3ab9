"""Tool calls, the way Ollama answers a chat that offers ``tools``, deterministically.

A real model decides which tools to call; the simulator follows the question. Each
``name({...json arguments...})`` in the last user message is one call, made in that
order, one per answer (the model sees each result before the next call): the answer is
``message.tool_calls = [{"function": {"name", "arguments"}}]`` with empty content, as
Ollama documents. A question without such a call asks for the first offered tool that
needs no arguments, once. When every call has its ``tool`` message, the answer is text
that quotes each result (``name returned: <content>``). Names are not checked against
the offered tools, so a test can make the "model" ask for a tool that does not exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["planned_calls", "tool_answer", "tool_calls"]

_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\(")
_DECODER = json.JSONDecoder()


def _turn(body: Mapping[str, Any]) -> tuple[str, list[Mapping[str, Any]]]:
    """The last user message and the tool results that came after it."""
    messages = [m for m in body.get("messages") or () if isinstance(m, Mapping)]
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    question = str(messages[last_user].get("content", "")) if last_user >= 0 else ""
    results = [m for m in messages[last_user + 1 :] if m.get("role") == "tool"]
    return question, results


def planned_calls(question: str, tools: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The calls a question asks for, in order."""
    calls: list[dict[str, Any]] = []
    for match in _CALL.finditer(question):
        rest = question[match.end() :].lstrip()
        arguments: Any = {}
        if rest.startswith("{"):
            try:
                arguments, _ = _DECODER.raw_decode(rest)
            except ValueError:
                arguments = {}
        elif not rest.startswith(")"):
            continue  # "name(" followed by prose: not a call
        calls.append({"function": {"name": match.group(1), "arguments": arguments}})
    if calls:
        return calls
    for tool in tools:
        function = tool.get("function") or {}
        if not (function.get("parameters") or {}).get("required"):
            return [{"function": {"name": function.get("name", ""), "arguments": {}}}]
    return []


def tool_calls(body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The next call this chat asks for, or None when it is time to answer."""
    tools = [t for t in body.get("tools") or () if isinstance(t, Mapping)]
    if not tools:
        return None
    question, results = _turn(body)
    plan = planned_calls(question, tools)
    if len(results) >= len(plan):
        return None
    return [plan[len(results)]]


def tool_answer(body: Mapping[str, Any]) -> str:
    """The final answer: every tool result of this turn, quoted."""
    _question, results = _turn(body)
    if not results:
        return "I have no tool results to answer from."
    return " ".join(
        f"{m.get('tool_name') or m.get('name') or 'tool'} returned: {m.get('content', '')}"
        for m in results
    )
