"""Is a decoded value believable, and which word order would make it so?

A float32 read in the wrong word order rarely fails: it decodes to a number, just a
wrong one (230 V stored CDAB reads 1.65e-34 V as ABCD). The tell-tales are NaN and
infinities, denormals and absurdly small magnitudes, and values outside what the point's
unit can physically be. ``judge`` names the first that applies; ``suggest_orders``
decodes the same registers in the other orders and keeps those that pass. Sans-IO:
registers in, verdicts out.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Final

from mcptool.modbus.datatypes import Value, codec

__all__ = ["Suggestion", "judge", "suggest_orders"]

#: Below this (and not 0) no industrial quantity is measured; a word swap lands here.
_TINY: Final = 1e-20
_HUGE: Final = 1e15
_FLOAT32_MIN_NORMAL: Final = struct.unpack(">f", bytes.fromhex("00800000"))[0]
_FLOAT64_MIN_NORMAL: Final = 2.2250738585072014e-308

# What a point's unit can physically be (generous: a plausibility check, not an alarm).
_RANGES: Final[dict[str, tuple[float, float]]] = {
    "v": (-2e6, 2e6),
    "kv": (-2e3, 2e3),
    "a": (-1e6, 1e6),
    "ma": (-1e6, 1e6),
    "hz": (0.0, 1e5),
    "°c": (-273.15, 3000.0),
    "c": (-273.15, 3000.0),
    "degc": (-273.15, 3000.0),
    "°f": (-459.67, 5500.0),
    "k": (0.0, 5000.0),
    "%": (-1000.0, 1000.0),
    "bar": (-1.0, 1e4),
    "mbar": (-1e3, 1e7),
    "pa": (-1e5, 1e9),
    "kpa": (-1e2, 1e6),
    "psi": (-15.0, 1.5e5),
    "rpm": (-1e6, 1e6),
    "pf": (-1.0, 1.0),
}


# For each configured order: the others, words swapped first, then bytes, then both.
_LIKELY_FIRST: Final[dict[str, tuple[str, ...]]] = {
    "ABCD": ("CDAB", "BADC", "DCBA"),
    "CDAB": ("ABCD", "DCBA", "BADC"),
    "BADC": ("DCBA", "ABCD", "CDAB"),
    "DCBA": ("BADC", "CDAB", "ABCD"),
}


def judge(value: Value, type: str, unit: str = "") -> str | None:
    """Why ``value`` (decoded as ``type``, in ``unit``) is implausible; None when it is not."""
    if isinstance(value, bool | str) or not isinstance(value, int | float):
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "infinite"
        normal = _FLOAT32_MIN_NORMAL if type == "float32" else _FLOAT64_MIN_NORMAL
        if type.startswith("float") and value != 0 and abs(value) < normal:
            return "a denormal float"
        if value != 0 and abs(value) < _TINY:
            return f"{value:.3g} is vanishingly small"
        if abs(value) > _HUGE:
            return f"{value:.3g} is absurdly large"
    low, high = _RANGES.get(unit.strip().lower(), (-math.inf, math.inf))
    if not low <= value <= high:
        return f"{value:.6g} {unit} is outside {low:g}..{high:g} {unit}"
    return None


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A word order under which the same registers give a plausible value."""

    order: str
    value: Value


def suggest_orders(
    registers: tuple[int, ...],
    type: str,
    order: str,
    *,
    unit: str = "",
    scale: float = 1.0,
    offset: float = 0.0,
) -> list[Suggestion]:
    """The other orders in which ``registers`` decode to a plausible value, best first.

    Only multi-register numeric types have word orders to try; the configured ``order``
    is left out. When several pass (integers decode to some number in every order), the
    likelier mistake comes first: the words swapped (ABCD <-> CDAB, the classic meter
    case), then the bytes in each word swapped, then both.
    """
    if type in ("bool", "string", "int16", "uint16"):
        return []
    found: list[Suggestion] = []
    for other in _LIKELY_FIRST[order]:
        raw = codec(type, other).decode(registers)
        value = raw * scale + offset if isinstance(raw, int | float) else raw
        if judge(value, type, unit) is None:
            found.append(Suggestion(other, value))
    return found
