"""Option types every command shares: numbers that are finite and in range.

``Float`` and ``Int`` are click's ``FloatRange`` and ``IntRange`` (so ``--help`` shows the
range the same way) with ``mcptool.numbers.Range`` deciding what passes: NaN and the
infinities never do, and the refusal states the range. Every numeric option of every
command uses one of them; a test walks the command tree to keep it so.
"""

from __future__ import annotations

from typing import Any

import click

from mcptool.numbers import NumberError, Range

__all__ = ["Float", "Int"]


class Float(click.FloatRange):
    """A finite float, optionally bounded: ``Float(0, 3600, min_open=True)``."""

    name = "number"

    def __init__(
        self,
        min: float | None = None,
        max: float | None = None,
        min_open: bool = False,
        max_open: bool = False,
    ) -> None:
        super().__init__(min, max, min_open, max_open)
        self.range = Range(min, max, min_open, max_open)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = repr(value)  # a default, or a value given from Python
        else:
            text = str(value)
        try:
            return float(self.range.parse(text))
        except NumberError as exc:
            self.fail(str(exc), param, ctx)


class Int(click.IntRange):
    """A whole number, optionally bounded: ``Int(1, 255)``."""

    name = "integer"

    def __init__(
        self,
        min: int | None = None,
        max: int | None = None,
    ) -> None:
        super().__init__(min, max)
        self.range = Range(min, max, integer=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            return int(self.range.parse(str(value)))
        except NumberError as exc:
            self.fail(str(exc), param, ctx)
