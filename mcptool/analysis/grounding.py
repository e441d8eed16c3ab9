"""Grounding: every number a finding quotes must be one the model was given.

A small model writes fluent sentences around numbers it made up ("the pressure fell to
0.8 bar" when the window never went below 1.2). A technician cannot tell those from real
readings, so the pipeline checks each number in a finding's text against the numbers of
its prompt (the window's statistics, thresholds, usual levels, the trigger details): a
quoted number is grounded when it equals one of them as written, or is one of them
rounded to the digits it was quoted with (97.37 in the prompt, "97.4" in the finding).

Small whole numbers (below 10: "check both pumps", "step 2", "L1") are not checked: they
count things far more often than they quote readings, and flagging them would make the
check cry wolf.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["numbers_in", "ungrounded"]

# a number not glued to a word ("L1", "int16", "x2" are names, not readings)
_NUMBER = re.compile(r"(?<![\w.])[-+−]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])")


def numbers_in(text: str) -> list[str]:
    """The numbers written in ``text``, as written."""
    return [m.group(0).replace("−", "-") for m in _NUMBER.finditer(text)]


def _decimals(written: str) -> int:
    mantissa = written.lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def _matches(written: str, known: Iterable[float]) -> bool:
    value = float(written)
    magnitude = abs(value)
    if "e" not in written.lower() and "." not in written and magnitude < 10:
        return True
    half_step = 0.5 * 10 ** -_decimals(written) if "e" not in written.lower() else 0.0
    # a quoted number may drop its sign ("a fall of 3.2 bar/min" for a trend of -3.2)
    return any(abs(magnitude - abs(k)) <= half_step + 1e-9 * max(1.0, abs(k)) for k in known)


def ungrounded(texts: Iterable[str], prompt: str) -> list[str]:
    """The numbers in ``texts`` that are not in ``prompt``, each once, in order."""
    known = [float(n) for n in numbers_in(prompt)]
    out: list[str] = []
    for text in texts:
        for written in numbers_in(text):
            if written not in out and not _matches(written, known):
                out.append(written)
    return out
