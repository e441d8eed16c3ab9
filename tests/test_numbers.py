"""``mcptool.numbers``: the one rule for numbers users write, finite and in range."""

from __future__ import annotations

import math
from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from mcptool.numbers import NumberError, Range, config_number


@pytest.mark.parametrize(
    ("number_range", "words"),
    [
        (Range(0.01, 3600), "a number from 0.01 to 3600"),
        (Range(0, 86400, low_open=True), "a number above 0 and at most 86400"),
        (Range(1, integer=True), "a whole number at least 1"),
        (Range(high=10, high_open=True), "a number below 10"),
        (Range(), "a finite number"),
    ],
)
def test_the_range_is_described_in_words(number_range: Range, words: str) -> None:
    assert number_range.describe() == words


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400"])
def test_nan_and_the_infinities_are_refused_with_the_range(text: str) -> None:
    with pytest.raises(NumberError) as refused:
        Range(0, 10).parse(text)
    assert str(refused.value) == "not a finite number: give a number from 0 to 10"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "out of range: give a number above 0 and at most 1"),
        ("1.5", "out of range: give a number above 0 and at most 1"),
        ("", "not a number: give a number above 0 and at most 1"),
        ("one", "not a number: give a number above 0 and at most 1"),
    ],
)
def test_numbers_outside_the_range_are_refused_with_it(text: str, message: str) -> None:
    with pytest.raises(NumberError) as refused:
        Range(0, 1, low_open=True).parse(text)
    assert str(refused.value) == message


@pytest.mark.parametrize("text", ["1.5", "9" * 5000, "9" * 400, "-" + "9" * 400, "1e3"])
def test_whole_numbers_refuse_fractions_and_huge_ones(text: str) -> None:
    with pytest.raises(NumberError) as refused:
        Range(1, 255, integer=True).parse(text)
    assert str(refused.value) in (
        "not a whole number: give a whole number from 1 to 255",
        "out of range: give a whole number from 1 to 255",
    )


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_whatever_passes_is_finite_and_inside(value: float) -> None:
    number_range = Range(-1, 1)
    if number_range.contains(value):
        assert math.isfinite(value) and -1 <= value <= 1
    else:
        assert not (math.isfinite(value) and -1 <= value <= 1)


class Model(BaseModel):
    scale: Annotated[float, config_number()] = 1.0
    interval: Annotated[float, config_number(gt=0, le=86400)] = 1.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("scale", math.nan, "should be a finite number"),
        ("scale", -math.inf, "should be a finite number"),
        ("interval", math.nan, "should be a number above 0 and at most 86400"),
        ("interval", 0, "should be a number above 0 and at most 86400"),
        ("interval", 1e9, "should be a number above 0 and at most 86400"),
    ],
)
def test_config_numbers_refuse_nan_and_state_the_range(
    field: str, value: float, message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Model.model_validate({field: value})
    (error,) = refused.value.errors()
    assert error["loc"] == (field,) and error["msg"] == message


def test_config_numbers_in_range_pass_unchanged() -> None:
    assert Model.model_validate({"scale": -0.5, "interval": 86400}).scale == -0.5
