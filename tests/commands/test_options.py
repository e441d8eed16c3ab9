"""``Float`` and ``Int``: every numeric option refuses NaN, infinities and out-of-range."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from mcptool.commands.options import Float, Int


@click.command()
@click.option("--seconds", type=Float(0, 60, min_open=True), default=1.0)
@click.option("--count", type=Int(1, 10), default=1)
def command(seconds: float, count: int) -> None:
    click.echo(f"{seconds!r} {count!r}")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(command, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        ([], "1.0 1"),
        (["--seconds", "0.5", "--count", "10"], "0.5 10"),
        (["--seconds", "60"], "60.0 1"),
    ],
)
def test_numbers_in_range_pass(args: list[str], shown: str) -> None:
    assert invoke(*args) == (0, shown + "\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--seconds", "nan"],
            "--seconds nan: not a finite number: give a number above 0 and at most 60",
        ),
        (["--seconds", "-inf"], "--seconds -inf: not a finite number"),
        (["--seconds", "0"], "--seconds 0: out of range: give a number above 0 and at most 60"),
        (["--count", "11"], "--count 11: out of range: give a whole number from 1 to 10"),
        (["--count", "nan"], "--count nan: not a whole number: give a whole number from 1 to 10"),
        (["--count", "2.5"], "--count 2.5: not a whole number"),
        (["--count", ""], "--count '': not a whole number"),
    ],
)
def test_bad_numbers_are_usage_errors_that_state_the_range(args: list[str], message: str) -> None:
    code, output = invoke(*args)
    assert code == 2
    assert message in " ".join(output.split())


def test_help_shows_the_range() -> None:
    assert "0<x<=60" in invoke("--help")[1]
