"""Deterministic values that satisfy a JSON schema: the simulator's structured output.

A real model constrained by a grammar answers with JSON that fits the schema; the
simulator does the same by walking the schema with a seeded random generator. It covers
what structured-output schemas use in practice (types, properties/required, enum/const,
arrays with min/max items, string lengths and formats, numeric bounds, anyOf/oneOf/allOf,
local ``$ref``), not the whole of JSON Schema.
"""

from __future__ import annotations

import random
from typing import Any

from simulators.ollama.text import words

_FORMATS = {
    "date-time": "2024-05-01T12:00:00Z",
    "date": "2024-05-01",
    "time": "12:00:00Z",
    "email": "operator@example.com",
    "uri": "http://127.0.0.1/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "localhost",
}


def value_for(schema: Any, rng: random.Random, *, root: Any = None, depth: int = 0) -> Any:
    """A value valid against ``schema`` (``root`` resolves ``#/...`` references)."""
    root = schema if root is None else root
    if schema is True or not isinstance(schema, dict) or not schema:
        return " ".join(words(rng, 3))
    if depth > 12:  # recursive schemas: stop at a leaf
        return None
    if "$ref" in schema:
        return value_for(_resolve(root, schema["$ref"]), rng, root=root, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(list(schema["enum"]))
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged = _merge(merged, part)
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        return value_for(_merge(merged, rest), rng, root=root, depth=depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [
                o for o in schema[key] if not (isinstance(o, dict) and o.get("type") == "null")
            ]
            chosen = options[0] if options else schema[key][0]
            return value_for(chosen, rng, root=root, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        non_null = [k for k in kind if k != "null"]
        kind = non_null[0] if non_null else "null"
    if kind is None:
        kind = _infer_type(schema)
    if kind == "object":
        return _object(schema, rng, root, depth)
    if kind == "array":
        return _array(schema, rng, root, depth)
    if kind == "string":
        return _string(schema, rng)
    if kind == "integer":
        return _integer(schema, rng)
    if kind == "number":
        return _number(schema, rng)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return " ".join(words(rng, 3))


def _infer_type(schema: dict[str, Any]) -> str:
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "minItems" in schema or "prefixItems" in schema:
        return "array"
    if "minimum" in schema or "maximum" in schema:
        return "number"
    return "string"


def _resolve(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        return {}
    node = root
    for part in ref.lstrip("#").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node.get(part, {})
    return node


def _merge(a: dict[str, Any], b: Any) -> dict[str, Any]:
    if not isinstance(b, dict):
        return a
    out = dict(a)
    for key, value in b.items():
        if key == "properties" and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        elif key == "required" and isinstance(out.get(key), list):
            out[key] = sorted(set(out[key]) | set(value))
        else:
            out[key] = value
    return out


def _object(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties", {}) or {}
    out: dict[str, Any] = {}
    # Every declared property, as grammar-constrained models usually fill them all.
    for name, sub in properties.items():
        out[name] = value_for(sub, rng, root=root, depth=depth + 1)
    for name in schema.get("required", []):
        if name not in out:
            extra = schema.get("additionalProperties")
            sub = extra if isinstance(extra, dict) else {"type": "string"}
            out[name] = value_for(sub, rng, root=root, depth=depth + 1)
    minimum = int(schema.get("minProperties", 0))
    extra = schema.get("additionalProperties", True)
    index = 0
    while len(out) < minimum and extra is not False:
        sub = extra if isinstance(extra, dict) else {"type": "string"}
        out[f"extra_{index}"] = value_for(sub, rng, root=root, depth=depth + 1)
        index += 1
    return out


def _array(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> list[Any]:
    prefix = list(schema.get("prefixItems", []))
    items = schema.get("items", {"type": "string"})
    low = max(int(schema.get("minItems", 1)), len(prefix))
    high = int(schema.get("maxItems", max(low, 3)))
    count = rng.randint(low, max(low, min(high, low + 2)))
    out = [value_for(s, rng, root=root, depth=depth + 1) for s in prefix][:count]
    while len(out) < count:
        value = value_for(items, rng, root=root, depth=depth + 1)
        if schema.get("uniqueItems") and value in out:
            if isinstance(items, dict) and "enum" in items:  # a renamed value leaves the enum
                unused = [v for v in items["enum"] if v not in out]
                if not unused:
                    break
                value = rng.choice(unused)
            elif isinstance(value, str):
                value = f"{value} {len(out)}"
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                value = value + len(out)
            else:
                break
        out.append(value)
    return out


def _string(schema: dict[str, Any], rng: random.Random) -> str:
    fmt = schema.get("format")
    if fmt in _FORMATS:
        return _FORMATS[fmt]
    low = int(schema.get("minLength", 1))
    high = int(schema.get("maxLength", max(low, 80)))
    text = " ".join(words(rng, rng.randint(3, 8)))
    while len(text) < low:
        text += " " + " ".join(words(rng, 4))
    text = text[:high].rstrip() if len(text[:high].rstrip()) >= low else text[:high]
    return text


def _integer(schema: dict[str, Any], rng: random.Random) -> int:
    low, high = _bounds(schema, integer=True)
    value = rng.randint(int(low), int(high))
    step = schema.get("multipleOf")
    if isinstance(step, int) and step > 0:
        value = value - value % step
        if value < low:
            value += step
    return value


def _number(schema: dict[str, Any], rng: random.Random) -> float:
    low, high = _bounds(schema, integer=False)
    return round(rng.uniform(low, high), 3) if high > low else float(low)


def _bounds(schema: dict[str, Any], *, integer: bool) -> tuple[float, float]:
    low = float(schema.get("minimum", 0))
    high = float(schema.get("maximum", max(low, 100)))
    if "exclusiveMinimum" in schema:
        low = float(schema["exclusiveMinimum"]) + (1 if integer else 1e-3)
    if "exclusiveMaximum" in schema:
        high = float(schema["exclusiveMaximum"]) - (1 if integer else 1e-3)
    if integer:
        import math

        low, high = math.ceil(low), math.floor(high)
    return low, max(low, high)
