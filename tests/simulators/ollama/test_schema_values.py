"""Schema-driven answers are valid against their schema, and deterministic."""

from __future__ import annotations

import random
from typing import Any

import jsonschema
import pytest

from simulators.ollama import value_for

SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {
            "severity": {"type": "string", "enum": ["normal", "warning", "critical"]},
            "summary": {"type": "string"},
            "suspected_causes": {"type": "array", "items": {"type": "string"}},
            "actions": {"type": "array", "items": {"type": "string"}},
            "points": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["severity", "summary", "suspected_causes", "actions", "points"],
        "additionalProperties": False,
    },
    {"type": "integer", "minimum": 10, "maximum": 12, "multipleOf": 2},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    {"type": "string", "minLength": 90, "maxLength": 100},
    {"type": "string", "format": "date-time"},
    {
        "type": "array",
        "items": {"type": "integer"},
        "minItems": 4,
        "maxItems": 4,
        "uniqueItems": True,
    },
    {"type": ["null", "boolean"]},
    {"const": "fixed"},
    {
        "anyOf": [
            {"type": "null"},
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
        ]
    },
    {"allOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]}, {"required": ["b"]}]},
    {
        "$defs": {
            "point": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "value": {"type": "number"}},
                "required": ["name", "value"],
            }
        },
        "type": "object",
        "properties": {
            "points": {"type": "array", "items": {"$ref": "#/$defs/point"}, "minItems": 1}
        },
        "required": ["points"],
    },
    {"type": "object", "minProperties": 2, "additionalProperties": {"type": "integer"}},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: str(s)[:40])
@pytest.mark.parametrize("seed", range(5))
def test_values_satisfy_their_schema(schema: dict[str, Any], seed: int) -> None:
    jsonschema.validate(value_for(schema, random.Random(seed)), schema)


def test_the_same_seed_gives_the_same_value() -> None:
    schema = SCHEMAS[0]
    assert value_for(schema, random.Random(4)) == value_for(schema, random.Random(4))
