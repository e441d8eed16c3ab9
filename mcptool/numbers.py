"""Numbers a user writes, on the command line or in a config: finite, and within a range.

``float("nan")`` compares false with everything, so a plain ``low <= x <= high`` check
lets NaN through (click's ``FloatRange`` and pydantic's ``gt``/``le`` both do); then a
timeout of NaN never fires and a duration of NaN never ends. ``Range`` is the one rule
both the commands (``mcptool.commands.options``) and the config models (``config_number``)
apply: a number must be finite and inside its range, and the message that refuses one
states the range, so the user learns the fix from the same line.

This module imports neither click nor pydantic at import time: the commands import it
on every run, and ``mcptool frame decode`` should not pay for pydantic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["NumberError", "Range", "config_number"]


class NumberError(ValueError):
    """A number that is not finite or outside its range; ``str()`` states the range."""


def _finite(value: float) -> bool:
    # an int is finite however large; math.isfinite would raise OverflowError past 1e308
    return isinstance(value, int) or math.isfinite(value)


def _show(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


@dataclass(frozen=True, slots=True)
class Range:
    """The numbers an option or a config key accepts: finite, between optional bounds."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: ``low`` itself is refused
    high_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        """The accepted numbers in words: ``a number above 0 and at most 3600``."""
        what = "a whole number" if self.integer else "a number"
        low = None if self.low is None else _show(self.low)
        high = None if self.high is None else _show(self.high)
        if low is not None and high is not None and not (self.low_open or self.high_open):
            return f"{what} from {low} to {high}"
        parts = []
        if low is not None:
            parts.append(f"above {low}" if self.low_open else f"at least {low}")
        if high is not None:
            parts.append(f"below {high}" if self.high_open else f"at most {high}")
        return f"{what} {' and '.join(parts)}" if parts else f"a finite {what.removeprefix('a ')}"

    def contains(self, value: float) -> bool:
        if not _finite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def check(self, value: float) -> float:
        """``value`` itself when it is finite and in range; else ``NumberError``.

        The message leaves out the value: the caller names the option or key and the
        value it was given, e.g. ``--heartbeat nan: not a finite number: give ...``.
        """
        if not _finite(value):
            raise NumberError(f"not a finite number: give {self.describe()}")
        if not self.contains(value):
            raise NumberError(f"out of range: give {self.describe()}")
        return value

    def parse(self, text: str) -> float:
        """A number written as text (``"0.5"``, ``"1e3"``, ``"7"``), checked."""
        stripped = text.strip()
        try:
            value: float = int(stripped) if self.integer else float(stripped)
        except ValueError:
            kind = "a whole number" if self.integer else "a number"
            raise NumberError(f"not {kind}: give {self.describe()}") from None
        return self.check(value)


def config_number(
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    integer: bool = False,
) -> Any:
    """pydantic metadata: a finite number in range, else "should be <range>, got x".

    ``scale: Annotated[float, config_number()]`` refuses ``nan`` and ``inf``;
    ``Annotated[float, config_number(gt=0, le=86400)]`` also states its range when it
    refuses a number (pydantic's own ``gt``/``le`` let NaN through).
    """
    from pydantic import AfterValidator
    from pydantic_core import PydanticCustomError

    number_range = Range(
        low=gt if gt is not None else ge,
        high=lt if lt is not None else le,
        low_open=gt is not None,
        high_open=lt is not None,
        integer=integer,
    )

    def check(value: float) -> float:
        if not number_range.contains(value):
            raise PydanticCustomError(
                "number_range", "should be {range}", {"range": number_range.describe()}
            )
        return value

    return AfterValidator(check)
