"""Tool calls, the way Ollama answers a chat that offers ``tools``, deterministically.

A real model decides which tools to call; the simulator follows the question, in two
ways, one call per answer (the "model" sees each result before the next call). The
answer is ``message.tool_calls = [{"function": {"name", "arguments"}}]`` with empty
content, as Ollama documents.

- **Named calls.** Each ``name({...json arguments...})`` in the last user message is one
  call, in that order. Names are not checked against the offered tools, so a test can
  make the "model" ask for a tool that does not exist.
- **Chosen calls**, for a question in plain words ("why is the boiler running hot?"):
  the question's words, and the ideas a few of them imply (``_IMPLIES``: "why" and
  "hot" ask for findings, "hot" and "now" for current values, "trend" for history),
  are matched against each offered tool's name and description; every tool that shares
  a word is called, in the order the tools were offered. A tool whose arguments name a
  ``device`` gets the devices the question names, taken from the result of a tool that
  lists devices (``{"devices": [{"name": ..., "points": [...]}]}``), which is called
  first when it is offered; a ``point`` is the device's point the question names (or
  implies: "hot" means a temperature). A tool whose other required arguments cannot be
  filled from the question is left out. A read of current values that comes back as an
  error is followed by a read of the history of the same point (when a history tool is
  offered), as a model would fall back to the last known values. Chosen calls only
  read: a tool named ``write_*``/``set_*``/``delete_*`` is called only when named.
- Neither: the first offered tool that needs no arguments, once.

When every call has its ``tool`` message, the answer is text that quotes each result
(``name returned: <content>``; a result over ``QUOTE_LIMIT`` characters is cut there and
says how long it was; a device listing of chosen calls is given by the devices' names).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["QUOTE_LIMIT", "planned_calls", "tool_answer", "tool_calls"]

QUOTE_LIMIT = 1000  # characters of one result quoted in the answer
MAX_DEVICES = 3  # devices one chosen tool is called for

_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\(")
_WORD = re.compile(r"[a-z0-9]+")
_DECODER = json.JSONDecoder()

# what a plain question's words ask for, in the words tools describe themselves with
_IMPLIES: dict[str, tuple[str, ...]] = {
    "why": ("finding", "trigger"),
    "wrong": ("finding", "trigger"),
    "problem": ("finding", "trigger"),
    "fault": ("finding", "trigger"),
    "alarm": ("finding", "trigger"),
    "alert": ("finding", "trigger"),
    "hot": ("current", "finding"),
    "cold": ("current", "finding"),
    "warm": ("current", "finding"),
    "high": ("current", "finding"),
    "low": ("current", "finding"),
    "now": ("current",),
    "running": ("current",),
    "reading": ("current",),
    "current": ("current",),
    "trend": ("history",),
    "earlier": ("history",),
    "yesterday": ("history",),
    "offline": ("offline",),
    "down": ("offline",),
}
# what a question's words mean among a device's points
_POINT_WORDS: dict[str, tuple[str, ...]] = {
    "hot": ("temperature",),
    "cold": ("temperature",),
    "warm": ("temperature",),
    "temperature": ("temperature",),
    "pressure": ("pressure",),
    "power": ("power",),
    "voltage": ("voltage",),
}
# a question's words too common to tie it to a tool by themselves ("why" and "device"
# say something only through _IMPLIES, or as a device's name)
# fmt: off
_STOP = frozenset((
    "the", "this", "that", "what", "which", "when", "where", "who", "why", "how", "with",
    "from", "about", "there", "their", "is", "are", "was", "were", "does", "do", "did", "have",
    "has", "been", "being", "into", "over", "under", "than", "then", "them", "they", "it",
    "its", "and", "for", "not", "any", "all", "a", "an", "of", "on", "in", "at", "to", "my",
    "our", "device", "plant", "point",
))
# fmt: on
_WRITES = ("write_", "set_", "delete_")


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower().replace("_", " "))}


def _turn(body: Mapping[str, Any]) -> tuple[str, list[Mapping[str, Any]]]:
    """The last user message and the tool results that came after it."""
    messages = [m for m in body.get("messages") or () if isinstance(m, Mapping)]
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    question = str(messages[last_user].get("content", "")) if last_user >= 0 else ""
    results = [m for m in messages[last_user + 1 :] if m.get("role") == "tool"]
    return question, results


def _call(name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {"function": {"name": name, "arguments": dict(arguments)}}


def _named(question: str) -> list[dict[str, Any]]:
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
    return calls


def _function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    function = tool.get("function")
    return function if isinstance(function, Mapping) else {}


def _parameters(function: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(every parameter, the required ones)."""
    schema = function.get("parameters") or {}
    required = set(schema.get("required") or ())
    return set(schema.get("properties") or ()) | required, required


def _devices(results: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The devices a listing tool returned in this turn (``{"devices": [{"name"...}]}``)."""
    for message in results:
        try:
            content = json.loads(str(message.get("content", "")))
        except ValueError:
            continue
        if isinstance(content, Mapping) and isinstance(content.get("devices"), list):
            return [d for d in content["devices"] if isinstance(d, Mapping) and d.get("name")]
    return []


def _point(device: Mapping[str, Any], words: set[str]) -> str | None:
    """The device's point the question names or implies, else its first point."""
    points = [str(p.get("name")) for p in device.get("points") or () if isinstance(p, Mapping)]
    wanted = words | {w for word in words for w in _POINT_WORDS.get(word, ())}
    for name in points:
        if _words(name) & wanted:
            return name
    return points[0] if points else None


def _chosen(
    question: str, tools: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The calls a plain-words question asks for (see the module's docstring)."""
    said = _words(question)
    wanted = (said - _STOP) | {idea for word in said for idea in _IMPLIES.get(word, ())}
    functions = [_function(tool) for tool in tools]
    matching = [
        f
        for f in functions
        if not str(f.get("name", "")).startswith(_WRITES)
        and _words(f"{f.get('name', '')} {f.get('description', '')}") & wanted
    ]
    if not matching:
        return []
    lister = next(
        (
            f
            for f in functions
            if not _parameters(f)[1] and "device" in _words(f"{f.get('name', '')}")
        ),
        None,
    )
    needs_devices = any("device" in _parameters(f)[0] for f in matching)
    calls: list[dict[str, Any]] = []
    if needs_devices and lister is not None:
        calls.append(_call(str(lister["name"]), {}))
        if len(results) < 1:
            return calls  # the rest depends on what the listing returns
    devices = _devices(results)
    named = [d for d in devices if _words(str(d["name"])) <= said][:MAX_DEVICES]
    for f in matching:
        if f is lister:
            continue
        name = str(f.get("name", ""))
        parameters, required = _parameters(f)
        if required - {"device", "point"}:
            continue  # a host, a value: nothing in a plain question to fill it with
        if "device" not in parameters:
            calls.append(_call(name, {}))
            continue
        if not named:
            if "device" not in required:
                calls.append(_call(name, {}))
            continue
        for device in named:
            arguments: dict[str, Any] = {"device": device["name"]}
            if "point" in required:
                point = _point(device, wanted)
                if point is None:
                    continue
                arguments["point"] = point
            calls.append(_call(name, arguments))
    return calls + _fallbacks(calls, functions, results, devices, wanted)


def _fallbacks(
    calls: list[dict[str, Any]],
    functions: Sequence[Mapping[str, Any]],
    results: Sequence[Mapping[str, Any]],
    devices: Sequence[Mapping[str, Any]],
    wanted: set[str],
) -> list[dict[str, Any]]:
    """A history read for each read of current values that failed."""
    history = next((f for f in functions if "history" in _words(str(f.get("name", "")))), None)
    if history is None:
        return []
    by_name = {str(d["name"]): d for d in devices}
    extra: list[dict[str, Any]] = []
    for call, result in zip(calls, results, strict=False):
        name = call["function"]["name"]
        device = by_name.get(str(call["function"]["arguments"].get("device")))
        failed = str(result.get("content", "")).startswith("error")
        if device is None or not failed or "value" not in _words(name) or name == history["name"]:
            continue
        point = _point(device, wanted)
        if point is not None:
            arguments = {"device": device["name"], "point": point, "minutes": 60, "limit": 10}
            extra.append(_call(str(history["name"]), arguments))
    return extra


def planned_calls(
    question: str,
    tools: Sequence[Mapping[str, Any]],
    results: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The calls a question asks for, in order, given the ``tool`` messages so far (the
    calls chosen from plain words depend on what the first ones returned)."""
    calls = _named(question) or _chosen(question, tools, results)
    if calls:
        return calls
    for tool in tools:
        function = _function(tool)
        if not _parameters(function)[1]:
            return [_call(str(function.get("name", "")), {})]
    return []


def tool_calls(body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The next call this chat asks for, or None when it is time to answer."""
    tools = [t for t in body.get("tools") or () if isinstance(t, Mapping)]
    if not tools:
        return None
    question, results = _turn(body)
    plan = planned_calls(question, tools, results)
    if len(results) >= len(plan):
        return None
    return [plan[len(results)]]


def tool_answer(body: Mapping[str, Any]) -> str:
    """The final answer: every tool result of this turn, quoted (a device listing the
    simulator asked for on its own, by its devices' names)."""
    question, results = _turn(body)
    if not results:
        return "I have no tool results to answer from."
    chosen = not _named(question)
    quoted = []
    for m in results:
        name = m.get("tool_name") or m.get("name") or "tool"
        content = str(m.get("content", ""))
        devices = _devices([m]) if chosen else []
        if devices:
            names = ", ".join(str(d["name"]) for d in devices)
            quoted.append(f"{name} returned {len(devices)} devices: {names}.")
            continue
        if len(content) > QUOTE_LIMIT:
            content = f"{content[:QUOTE_LIMIT]}... ({len(content)} characters)"
        quoted.append(f"{name} returned: {content}")
    return " ".join(quoted)
