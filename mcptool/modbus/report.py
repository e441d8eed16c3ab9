"""Probe and scan results for people (a table) and for programs (JSON Lines, CSV)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mcptool.modbus.connection import Outcome
from mcptool.modbus.probe import ProbeResult

CSV_FIELDS = (
    "target",
    "name",
    "unit",
    "function",
    "address",
    "count",
    "outcome",
    "answered",
    "connect_ms",
    "response_ms",
    "values",
    "exception_code",
    "exception_name",
    "malformed",
    "reason",
    "identity",
)

_STYLES = {
    Outcome.OK: "green",
    Outcome.EXCEPTION: "yellow",
    Outcome.MALFORMED: "magenta",
}


def json_line(result: ProbeResult) -> str:
    """One JSON object on one line."""
    return json.dumps(result.as_dict(), separators=(",", ":"))


class CsvWriter:
    """CSV with a header row; values are space separated, identity is a short summary."""

    def __init__(self, stream: IO[str]) -> None:
        self._writer = csv.DictWriter(stream, CSV_FIELDS, extrasaction="ignore")
        self._writer.writeheader()

    def write(self, result: ProbeResult) -> None:
        row: dict[str, Any] = result.as_dict()
        row["values"] = (
            "" if result.values is None else " ".join(str(int(v)) for v in result.values)
        )
        row["identity"] = "" if result.identity is None else result.identity.summary()
        row["unit"] = "" if result.unit is None else result.unit
        for key in (
            "name",
            "connect_ms",
            "response_ms",
            "exception_code",
            "exception_name",
            "malformed",
        ):
            if row[key] is None:
                row[key] = ""
        self._writer.writerow(row)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(
    results: Iterable[ProbeResult], *, identity: bool = False, title: str | None = None
) -> Table:
    """A rich table: target, unit, outcome, connect ms, response ms, values or reason."""
    grid = Table(title=title, header_style="bold")
    grid.add_column("target", no_wrap=True)
    grid.add_column("unit", justify="right")
    grid.add_column("outcome", no_wrap=True)
    grid.add_column("conn ms", justify="right", no_wrap=True)
    grid.add_column("resp ms", justify="right", no_wrap=True)
    grid.add_column("values / reason", overflow="fold")
    if identity:
        grid.add_column("identity", overflow="fold")
    for result in results:
        outcome = result.outcome.value
        if result.malformed is not None:
            outcome += f" ({result.malformed.value})"
        style = _STYLES.get(result.outcome, "red")
        if result.device_absent:
            style = "red"
        row = [
            escape(result.target if result.name is None else f"{result.name} {result.target}"),
            "-" if result.unit is None else str(result.unit),
            f"[{style}]{outcome}[/]",
            _ms(result.connect_ms),
            _ms(result.response_ms),
            escape(result.detail),
        ]
        if identity:
            row.append("" if result.identity is None else escape(result.identity.summary()))
        grid.add_row(*row)
    return grid


def stdout_console() -> Console:
    """A console for stdout; wide when it is a pipe or file, so rows never fold."""
    console = Console()
    return console if console.is_terminal else Console(width=240)


def print_table(
    console: Console, results: Iterable[ProbeResult], *, identity: bool = False
) -> None:
    console.print(table(results, identity=identity))


def _hidden_reason(result: ProbeResult) -> str:
    if result.device_absent:
        return f"absent behind a gateway ({result.exception_code:#04x})"
    return result.outcome.value


def split_answered(
    results: Iterable[ProbeResult],
) -> tuple[list[ProbeResult], Counter[str]]:
    """What a scan table lists, and the rest counted by why.

    Listed: devices that answered Modbus (values or their own exception) and peers that
    answered with something that is not Modbus (worth a look). Counted: silence, refusals
    and a gateway's "device absent" (0x0A/0x0B), which a unit sweep meets for every unit
    id it tries in vain.
    """
    shown: list[ProbeResult] = []
    hidden: Counter[str] = Counter()
    for result in results:
        if result.answered or result.outcome is Outcome.MALFORMED:
            shown.append(result)
        else:
            hidden[_hidden_reason(result)] += 1
    return shown, hidden


def hidden_line(hidden: Counter[str]) -> str | None:
    """``246 not listed (246 absent behind a gateway (0x0b)): --all lists them ...``."""
    total = sum(hidden.values())
    if not total:
        return None
    reasons = ", ".join(f"{n} {why}" for why, n in hidden.most_common())
    return f"{total} not listed ({reasons}): --all lists them, --json gives every row"
