"""Scripted answers for ``mcptool simulate ollama --script FILE``: rules matched in order
against each chat and generate request, so a tester outside Python gets known answers.

A script is TOML (``[[rule]]`` tables) or, for a name ending in ``.json``, JSON
(``{"rule": [...]}``). A rule matches when every condition it names holds; the first
that matches answers. Without a match the simulator answers as it always does.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from mcptool.errors import UsageError
from mcptool.ollama.structured import check_structured
from simulators.ollama.findings import device_of, trigger_finding, triggers_of

MATCH_KEYS = ("model", "endpoint", "contains", "regex", "device", "trigger")
ANSWER_KEYS = ("answer", "triggers", "status", "message", "delay_s")
KEYS = (*MATCH_KEYS, *ANSWER_KEYS)


@dataclass(frozen=True)
class Rule:
    """One rule: the conditions (None: any), then what it answers."""

    index: int
    model: str | None = None
    endpoint: str | None = None
    contains: str | None = None
    regex: re.Pattern[str] | None = None
    device: str | None = None
    trigger: str | None = None
    answer: str | None = None
    triggers: bool = False
    status: int | None = None
    message: str = "scripted failure"
    delay_s: float = 0.0

    def matches(self, kind: str, body: Mapping[str, Any]) -> bool:
        text = asked(kind, body)
        model = str(body.get("model") or "")
        return (
            (self.model is None or any(fnmatchcase(m, self.model) for m in _names(model)))
            and (self.endpoint is None or self.endpoint == kind)
            and (self.contains is None or self.contains in text)
            and (self.regex is None or self.regex.search(text) is not None)
            and (self.device is None or device_of(text) == self.device)
            and (self.trigger is None or any(self.trigger == r for _, r, _ in triggers_of(text)))
        )

    def text(self, kind: str, body: Mapping[str, Any]) -> str:
        """The answer's text: the literal one, or the finding the prompt's triggers call
        for; ValueError when it does not satisfy the request's ``format``."""
        fmt = body.get("format")
        text = trigger_finding(asked(kind, body), fmt) if self.triggers else self.answer or ""
        if fmt == "json" or isinstance(fmt, Mapping):
            check_structured(text, fmt)
        return text


@dataclass(frozen=True)
class Scripted:
    """A matched rule's answer text, on its way to the generator (``Prompt.tag``)."""

    text: str


@dataclass(frozen=True)
class Script:
    """The rules of one script file, first match wins."""

    path: str
    rules: tuple[Rule, ...]

    def match(self, kind: str, body: Mapping[str, Any]) -> Rule | None:
        if kind not in ("chat", "generate"):
            return None
        return next((r for r in self.rules if r.matches(kind, body)), None)


def asked(kind: str, body: Mapping[str, Any]) -> str:
    """What a rule's text conditions look at: the prompt, or the last user message."""
    if kind == "generate":
        return str(body.get("prompt") or "")
    users = [
        m for m in body.get("messages") or () if isinstance(m, Mapping) and m.get("role") == "user"
    ]
    return str(users[-1].get("content") or "") if users else ""


def _names(model: str) -> tuple[str, ...]:
    # "llama3.2" and "llama3.2:latest" are one model to Ollama
    return (model, model.removesuffix(":latest"), model if ":" in model else f"{model}:latest")


def load_script(path: Path) -> Script:
    """The script at ``path``; UsageError (one line: file, rule, key) when it is wrong."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"script {path}: cannot read it ({exc})") from None
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise UsageError(f"script {path}: not valid {kind}: {exc}") from None
    if not isinstance(data, dict) or set(data) - {"rule"}:
        extra = sorted(set(data) - {"rule"}) if isinstance(data, dict) else ["(not a table)"]
        raise UsageError(f"script {path}: unknown key {extra[0]!r}; a script holds only 'rule'")
    rules = data.get("rule", [])
    if not isinstance(rules, list):
        raise UsageError(f"script {path}: 'rule' must be a list of tables ([[rule]])")
    return Script(str(path), tuple(_rule(path, i, r) for i, r in enumerate(rules, 1)))


def _rule(path: Path, index: int, raw: Any) -> Rule:
    where = f"script {path}: rule {index}"
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: must be a table of keys ({', '.join(KEYS)})")
    for key in raw:
        if key not in KEYS:
            raise UsageError(f"{where}: unknown key {key!r}; known: {', '.join(KEYS)}")
    fields: dict[str, Any] = {}
    for key in ("model", "contains", "device", "trigger", "message"):
        if key in raw:
            fields[key] = _typed(where, key, raw[key], str, "a string")
    if "endpoint" in raw:
        if raw["endpoint"] not in ("chat", "generate"):
            raise UsageError(f'{where}: key \'endpoint\' must be "chat" or "generate"')
        fields["endpoint"] = raw["endpoint"]
    if "regex" in raw:
        try:
            fields["regex"] = re.compile(_typed(where, "regex", raw["regex"], str, "a string"))
        except re.error as exc:
            raise UsageError(f"{where}: key 'regex' is not a regular expression ({exc})") from None
    if "answer" in raw:
        answer = raw["answer"]
        if not isinstance(answer, str | dict | list):
            raise UsageError(f"{where}: key 'answer' must be a text or a JSON object")
        fields["answer"] = answer if isinstance(answer, str) else json.dumps(answer)
    if "triggers" in raw:
        fields["triggers"] = _typed(where, "triggers", raw["triggers"], bool, "true or false")
    if "status" in raw:
        status = raw["status"]
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise UsageError(f"{where}: key 'status' must be an HTTP error status (400-599)")
        fields["status"] = status
    if "delay_s" in raw:
        delay = raw["delay_s"]
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 3600:
            raise UsageError(f"{where}: key 'delay_s' must be seconds from 0 to 3600")
        fields["delay_s"] = float(delay)
    said = [k for k in ("answer", "triggers", "status") if raw.get(k) not in (None, False)]
    if len(said) != 1:
        raise UsageError(
            f"{where}: give exactly one of 'answer', 'triggers = true' or 'status'"
            + (f" (it has {', '.join(said)})" if said else "")
        )
    return Rule(index, **fields)


def _typed(where: str, key: str, value: Any, kind: type, said: str) -> Any:
    if not isinstance(value, kind):
        raise UsageError(f"{where}: key {key!r} must be {said}")
    return value
