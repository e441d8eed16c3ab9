"""Tool calls in a model's text, read as Ollama reads them, whatever pieces the text comes in."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mcptool.serving.toolcalls import ToolCallReader, calls_in

READ = {"function": {"name": "read_values", "arguments": {"device": "boiler"}}}
LIST = {"function": {"name": "list_devices", "arguments": {}}}
QWEN = '<tool_call>\n{"name": "read_values", "arguments": {"device": "boiler"}}\n</tool_call>'
BARE = '{"name": "read_values", "arguments": {"device": "boiler"}}'  # the tag is not printed
FENCED = (
    '```json\n{\n  "name": "read_values",\n  "arguments": {\n    "device": "boiler"\n  }\n}\n```'
)


def read(pieces: list[str]) -> tuple[str, list[dict[str, Any]], str]:
    """(text shown while streaming, calls, text given at the end)."""
    reader = ToolCallReader()
    shown = "".join(reader.feed(piece) for piece in pieces)
    calls, rest = reader.end()
    return shown, calls, rest


def test_qwens_tagged_call_is_a_call_and_no_text() -> None:
    assert read([QWEN]) == ("", [READ], "")


def test_a_leading_json_object_is_a_call_as_ollama_takes_it() -> None:
    assert read(["\n", BARE]) == ("", [READ], "")


def test_a_json_fenced_call_is_a_call() -> None:
    assert read([FENCED]) == ("", [READ], "")


def test_several_calls_come_in_order() -> None:
    text = QWEN + '\n<tool_call>\n{"name": "list_devices", "arguments": {}}\n</tool_call>'
    assert read([text])[1] == [READ, LIST]


def test_arguments_as_json_text_are_an_object() -> None:
    text = '{"name": "read_values", "arguments": "{\\"device\\": \\"boiler\\"}"}'
    assert calls_in(text) == [READ]


def test_plain_text_streams_at_once_and_has_no_call() -> None:
    assert read(["The boiler ", "is at 91 °C."]) == ("The boiler is at 91 °C.", [], "")


def test_text_before_a_tag_is_shown_and_the_call_after_it_read() -> None:
    assert read(["Let me look. ", QWEN]) == ("Let me look. ", [READ], "")


def test_a_json_answer_that_is_no_call_comes_back_as_text() -> None:
    assert read(['{"severity": "warning"}']) == ("", [], '{"severity": "warning"}')


def test_a_cut_off_call_comes_back_as_text_not_lost() -> None:
    assert read(['{"name": "read_values", "argu']) == ("", [], '{"name": "read_values", "argu')


def test_a_code_block_of_something_else_is_text() -> None:
    code = "```python\nprint('hot')\n```"
    assert read([code]) == (code, [], "")


def test_a_name_with_arguments_that_are_not_an_object_is_no_call() -> None:
    assert calls_in('{"name": "probe", "arguments": 5}') == []


@given(st.sampled_from([QWEN, BARE, FENCED, "Let me look. " + QWEN, "No call at all: 91 °C."]),
       st.lists(st.integers(min_value=0, max_value=120), max_size=8))  # fmt: skip
def test_the_pieces_a_text_streams_in_do_not_change_what_is_read(
    text: str, cuts: list[int]
) -> None:
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    shown, calls, rest = read(pieces)
    whole_shown, whole_calls, whole_rest = read([text])
    assert calls == whole_calls
    assert shown + rest == whole_shown + whole_rest
