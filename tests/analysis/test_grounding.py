"""Grounding: a finding may quote only numbers its window prompt holds."""

from __future__ import annotations

import pytest

from mcptool.analysis.grounding import numbers_in, ungrounded

PROMPT = (
    "- [critical] [threshold] water_temp reached 97.37 °C, above 95 °C\n"
    "- water_temp (°C): n=10, min 90, max 97.37, mean 94.5, sd 3.028, trend +60 °C/min\n"
    "- pressure (bar): n=10, min 1.2, max 2.1, trend -0.42 bar/min"
)


def test_numbers_are_read_as_written_and_names_with_digits_are_not_numbers() -> None:
    assert numbers_in("L1 at 120 A, int16 register 40001, -3.5e2 and 2.5.") == [
        "120",
        "40001",
        "-3.5e2",
        "2.5",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "water_temp reached 97.37 °C, above 95 °C",
        "water_temp reached 97.4 °C",  # rounded to the digits quoted
        "water_temp about 97 °C",
        "mean 94.50 °C",
        "pressure falls by 0.42 bar/min",  # a fall quoted without its sign
        "check both of the 2 pumps",  # small counts are not readings
    ],
)
def test_numbers_from_the_window_are_grounded(text: str) -> None:
    assert ungrounded([text], PROMPT) == []


@pytest.mark.parametrize(
    ("text", "invented"),
    [
        ("pressure fell to 0.8 bar", ["0.8"]),
        ("water_temp reached 97.5 °C", ["97.5"]),  # not 97.37 at any rounding
        ("the pump draws 120 A and 120 A again", ["120"]),
        ("water_temp 98 °C", ["98"]),
    ],
)
def test_invented_numbers_are_named_once(text: str, invented: list[str]) -> None:
    assert ungrounded([text], PROMPT) == invented
