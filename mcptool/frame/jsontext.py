"""JSON text of REQUEST, RESPONSE and EVENT payloads, read and written within fixed bounds.

Python's ``json`` has no limits of its own: ``[`` x 5000 raises ``RecursionError`` and an
integer of more than 4,300 digits raises a plain ``ValueError``, from inside the parser,
in whatever code called it (on the hub, in the middle of a read from a node). Here the
bounds are checked before and while the text is parsed, and every refusal is an
:class:`~mcptool.frame.errors.EnvelopeError`, so a payload can only ever be valid or an
error the link answers. The limits are part of the protocol (docs/PROTOCOL.md, section 4).

The depth is measured on the text before it is parsed, not by catching
``RecursionError``: how deep the parser may recurse depends on how deep the caller's
stack already is, and a ``RecursionError`` can surface anywhere.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from mcptool.frame.errors import EnvelopeError

# Arrays and objects inside one another, the outermost included. An envelope uses 2;
# 64 leaves its `data` 62 levels and keeps the parser far from Python's recursion limit
# (one C-level recursion per level, 1,000 by default) at any depth of the caller's stack.
MAX_DEPTH = 64
# Characters of one number literal (sign, digits, point and exponent). A u64 takes 20,
# a float's shortest repr at most 24. Python refuses integers of more than 4,300 digits
# with a ValueError of its own, and converting long ones costs quadratic time.
MAX_NUMBER_LENGTH = 100

# Bytes that can decide where a string literal ends, or how deep brackets nest; the
# rest is deleted before counting. (UTF-8 never uses an ASCII byte inside a multi-byte
# character, so this works on the raw bytes.)
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"')
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
# Number characters, for a cheap look at whether any literal can be over the limit:
# digits become "0", signs "+", exponents "e", everything else a space.
_NUMBERISH = bytes(
    ord("0") if c in b"0123456789"
    else ord("+") if c in b"+-"
    else ord("e") if c in b"eE"
    else c if c == ord(".")
    else ord(" ")
    for c in range(256)
)  # fmt: skip
_RUN = bytes.maketrans(b".+e", b"000")
_LONG_RUN = b"0" * (MAX_NUMBER_LENGTH + 1)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_DIGITS = bytes(ord("0") if c in b"0123456789" else ord(" ") for c in range(256))
_INTEGER = re.compile(r"-?\d+")


class _Refused(Exception):
    """Raised by the parser hooks; turned into an EnvelopeError with its context."""


def too_deep(payload: bytes) -> bool:
    """Whether arrays and objects in ``payload`` nest deeper than :data:`MAX_DEPTH`.

    Brackets are counted outside string literals, from the start, so that text which is
    not JSON is measured as deep as the parser would recurse before it fails.
    """
    # The depth cannot exceed the number of opening brackets: most payloads stop here.
    if payload.count(b"[") + payload.count(b"{") <= MAX_DEPTH:
        return False
    if b"\\" in payload:
        # Escapes: only an escaped backslash or quote can hide where a string ends.
        payload = payload.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = payload.translate(None, _NOT_STRUCTURE)
    # Between the 2k-th and (2k+1)-th quote is string content (an unterminated last
    # string included: the parser never recurses into it).
    outside = b"".join(structure.split(b'"')[::2])
    return max(accumulate(map(_STEP.__getitem__, outside)), default=0) > MAX_DEPTH


def _numbers_need_checking(payload: bytes) -> bool:
    """Whether a number literal may be too long or overflow a float (strings included)."""
    numberish = payload.translate(_NUMBERISH)
    return (
        b"e000" in numberish  # an exponent of 3 digits or more: 1e400 is infinite
        or b"e+000" in numberish
        or _LONG_RUN in numberish.translate(_RUN)
    )


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_LENGTH:
        raise _Refused(
            f"a number of {len(literal)} characters (at most {MAX_NUMBER_LENGTH} are allowed)"
        )
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_LENGTH:
        raise _Refused(
            f"a number of {len(literal)} characters (at most {MAX_NUMBER_LENGTH} are allowed)"
        )
    value = float(literal)
    if math.isinf(value):
        raise _Refused(f"number {literal} is out of range for a 64-bit float")
    return value


def _parse_constant(name: str) -> Any:
    # json accepts NaN, Infinity and -Infinity, which JSON (RFC 8259) does not have.
    raise _Refused(f"{name} is not a JSON value")


_STRICT = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
)
# The common case: numbers are parsed by the C scanner, only the constants are refused.
_FAST = json.JSONDecoder(parse_constant=_parse_constant)


def load_json(payload: bytes, what: str) -> Any:
    """The JSON value of a payload; :class:`EnvelopeError` naming ``what`` if it is not one."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(
            f"{what} envelope: payload is not UTF-8 (byte {exc.start}: {exc.reason})"
        ) from None
    if too_deep(payload):
        raise EnvelopeError(
            f"{what} envelope: JSON nested deeper than {MAX_DEPTH} levels of arrays and objects"
        )
    decoder = _STRICT if _numbers_need_checking(payload) else _FAST
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise EnvelopeError(f"{what} envelope: invalid JSON at char {exc.pos}: {exc.msg}") from None
    except _Refused as exc:
        raise EnvelopeError(f"{what} envelope: {exc}") from None


def dump_json(value: Any, what: str) -> bytes:
    """Compact JSON of ``value``, refused (:class:`EnvelopeError`) unless a peer would take it.

    The ``__cause__`` of the error is what the json module objected to, if it was that.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise EnvelopeError(f"{what} envelope: data is not JSON-serialisable: {exc}") from exc
    except RecursionError:
        # Encoding an object graph has no text to measure beforehand; the encoder stops
        # cleanly at the recursion limit, far deeper than MAX_DEPTH.
        raise EnvelopeError(
            f"{what} envelope: data nested deeper than {MAX_DEPTH} levels of arrays and objects"
        ) from None
    data = text.encode()
    if too_deep(data):
        raise EnvelopeError(
            f"{what} envelope: data nested deeper than {MAX_DEPTH} levels of arrays and objects"
        )
    # Only integers can be long here (a float's repr is at most 24 characters).
    if _LONG_RUN[1:] in data.translate(_DIGITS):
        for number in _INTEGER.findall(_STRING.sub('""', text)):
            if len(number) > MAX_NUMBER_LENGTH:
                raise EnvelopeError(
                    f"{what} envelope: data holds an integer of {len(number)} characters"
                    f" (at most {MAX_NUMBER_LENGTH} are allowed)"
                )
    return data
