"""Structured output: the ``format`` a caller asks for, checked before sending, and the
answer checked against it (JSON, and the JSON schema when one was given)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

import jsonschema

from mcptool.errors import UsageError

Format = Literal["", "json"] | Mapping[str, Any] | None

# Sent once when an answer does not parse or match the schema: a small model often gets
# it right the second time when told what was wrong.
REPAIR_PROMPT = (
    "Your previous answer was not valid: {reason}. Answer again with only a JSON value "
    "that matches the requested schema, and nothing else."
)


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_format(fmt: Format) -> None:
    """Refuse a bad ``format`` before sending anything (a caller's bug, not the model's)."""
    if fmt is None or fmt in ("", "json"):
        return
    if not isinstance(fmt, Mapping):
        raise UsageError(f'format must be "json" or a JSON schema (a mapping), not {fmt!r}')
    try:
        _validator(json.dumps(fmt, sort_keys=True))
    except jsonschema.SchemaError as exc:
        raise UsageError(f"format is not a valid JSON schema: {exc.message}") from None
    except TypeError as exc:
        raise UsageError(f"format is not a JSON schema: {exc}") from None


def check_structured(text: str, fmt: Format) -> Any:
    """Parse a structured answer; raise ValueError with a short reason if it is not valid."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at char {exc.pos})") from None
    if isinstance(fmt, Mapping):
        error = jsonschema.exceptions.best_match(
            _validator(json.dumps(fmt, sort_keys=True)).iter_errors(data)
        )
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the answer"
            raise ValueError(f"{where}: {error.message}")
    return data
