"""Config problems: one per line, each with the exact path of the key it is about.

pydantic reports every problem of a model at once with its location; ``problems`` turns
those locations into the paths users read (``devices[2].points[5].type``,
``analysis.thresholds[1].above``) and its messages into short ones. The gateway's config
and the analysis's config both speak through it, so a mistake reads the same wherever it
is. pydantic is imported by the callers, not here, so that importing this stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcptool.errors import UsageError

__all__ = ["ConfigError", "Problem", "path_of", "problem_of", "problems_of"]

# messages whose value is part of the message already, or must not be echoed
_NO_ECHO = {"unknown_type", "unknown_table", "unknown_order", "custom_problem"}
_SECRETS = {"key", "password"}


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(UsageError):
    """The config has problems; ``problems`` has one per line, each with its path."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        first = problems[0] if problems else Problem("", "invalid")
        more = f" (and {len(problems) - 1} more; run `mcptool gateway check`)"
        super().__init__(f"{source}: {first}{more if len(problems) > 1 else ''}")


def problems_of(
    errors: Sequence[Mapping[str, Any]], prefix: Sequence[str | int] = ()
) -> list[Problem]:
    """One problem per pydantic error (``ValidationError.errors()``), paths under ``prefix``."""
    return [problem_of(error, prefix) for error in errors]


def problem_of(error: Mapping[str, Any], prefix: Sequence[str | int] = ()) -> Problem:
    # a check across keys (made at the model) names the key it is about in its context
    key = (error.get("ctx") or {}).get("key")
    loc = (*prefix, *error["loc"], *([key] if key else []))
    path = path_of(loc)
    kind = error["type"]
    if kind == "extra_forbidden" or kind == "unexpected_keyword_argument":
        return Problem(path, "unknown setting (check its spelling)")
    if kind == "missing" or kind == "missing_argument":
        return Problem(path, "missing (required)")
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    for start in ("Input should ", "String should ", "List should ", "Value should "):
        if message.startswith(start):
            message = "should " + message.removeprefix(start)
    secret = bool(loc) and str(loc[-1]) in _SECRETS
    if kind not in _NO_ECHO and not secret:
        message = f"{message}, got {error.get('input')!r}"  # never echo a secret
    return Problem(path, message)


def path_of(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "literal[")):
            continue  # pydantic's names for union members, not part of the user's path
        else:
            out += f".{part}" if out else str(part)
    return out
