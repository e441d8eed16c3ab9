"""Deterministic text: the same request always gets the same answer, word for word."""

from __future__ import annotations

import hashlib
import random
from typing import Any

VOCABULARY = (
    "the",
    "pump",
    "pressure",
    "temperature",
    "flow",
    "valve",
    "sensor",
    "reading",
    "rises",
    "falls",
    "stays",
    "within",
    "normal",
    "range",
    "limit",
    "alarm",
    "trend",
    "motor",
    "current",
    "vibration",
    "bearing",
    "load",
    "setpoint",
    "drift",
    "steady",
    "spike",
    "noise",
    "signal",
    "device",
    "register",
    "value",
    "window",
    "average",
    "deviation",
    "check",
    "inspect",
    "calibrate",
    "replace",
    "filter",
    "seal",
    "cooling",
    "supply",
    "line",
    "tank",
    "level",
    "outlet",
    "inlet",
    "operator",
    "shift",
    "maintenance",
    "schedule",
    "log",
    "event",
    "fault",
    "warning",
    "critical",
    "stable",
)


def words(rng: random.Random, count: int) -> list[str]:
    return [rng.choice(VOCABULARY) for _ in range(count)]


def seeded(*parts: Any) -> random.Random:
    """A generator seeded from the request's content, stable across processes and runs."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def sentence(rng: random.Random, low: int = 12, high: int = 32) -> list[str]:
    """Tokens of an answer: the first bare, the rest with their leading space (as Ollama's)."""
    picked = words(rng, rng.randint(low, high))
    picked[0] = picked[0].capitalize()
    picked[-1] += "."
    return [picked[0], *(" " + w for w in picked[1:])]


def tokenize(text: str, size: int = 4) -> list[str]:
    """Split a fixed answer (JSON, a scripted reply) into stream pieces of ~``size`` chars."""
    if not text:
        return []
    return [text[i : i + size] for i in range(0, len(text), size)]


def token_ids(text: str) -> list[int]:
    """Stable fake token ids for ``context`` and ``prompt_eval_count``."""
    return [
        int.from_bytes(hashlib.blake2b(w.encode(), digest_size=2).digest(), "big")
        for w in text.split()
    ]
