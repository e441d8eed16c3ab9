"""A streamed answer's bytes, cut anywhere, give the same lines and objects."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcptool.ollama.ndjson import LineSplitter, parse_object

OBJECTS = [{"response": "Hel", "done": False}, {"response": "lo\n", "done": False}, {"done": True}]
BODY = b"".join(json.dumps(o).encode() + b"\n" for o in OBJECTS)


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    lines: list[bytes] = []
    splitter = LineSplitter()
    start = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        lines += splitter.feed(body[start:cut])
        start = cut
    return lines + splitter.end()


@given(st.lists(st.integers(min_value=0, max_value=len(BODY))))
def test_any_cut_gives_the_same_objects(cuts: list[int]) -> None:
    assert [parse_object(line) for line in split(BODY, cuts)] == OBJECTS


def test_blank_lines_are_skipped_and_a_last_line_needs_no_newline() -> None:
    body = b'\n{"a":1}\r\n  \n\n{"b":2}'
    assert [parse_object(line) for line in split(body, [3, 9])] == [{"a": 1}, {"b": 2}]


def test_nothing_is_held_back_after_the_end() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert splitter.end() == [b'{"b"']
    assert splitter.end() == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"<html>busy</html>", "a line that is not JSON: b'<html>busy</html>'"),
        (b"\xff\xfe", "a line that is not JSON"),
        (b"[1, 2]", "[1, 2], not an object"),
    ],
)
def test_a_line_that_is_not_an_object_says_what_came(line: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match="^" + reason.replace("[", r"\[").replace("]", r"\]")):
        parse_object(line)
