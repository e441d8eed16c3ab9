"""The Ollama simulator's tool calls: which calls a question asks for, one per answer, and
the answer once every call has its result."""

from __future__ import annotations

from simulators.ollama.tools import planned_calls, tool_answer, tool_calls

READ = {"type": "function", "function": {"name": "read", "parameters": {"required": ["x"]}}}
LIST = {"type": "function", "function": {"name": "list", "parameters": {"required": []}}}


def call(name: str, **arguments: object) -> dict[str, object]:
    return {"function": {"name": name, "arguments": arguments}}


def test_each_named_call_in_order_with_its_json_arguments() -> None:
    question = 'Why? read({"x": {"nested": [1, 2]}}) then list() and (not a call) read( it'
    assert planned_calls(question, [READ, LIST]) == [
        call("read", x={"nested": [1, 2]}),
        call("list"),
    ]


def test_without_a_named_call_the_first_tool_needing_no_arguments() -> None:
    assert planned_calls("why is it hot?", [READ, LIST]) == [call("list")]
    assert planned_calls("why is it hot?", [READ]) == []


def test_one_call_per_answer_then_text_quoting_every_result() -> None:
    body = {"tools": [READ, LIST], "messages": [{"role": "user", "content": "list() list()"}]}
    assert tool_calls(body) == [call("list")]
    body["messages"] += [{"role": "assistant", "content": ""},
                         {"role": "tool", "tool_name": "list", "content": "[1]"}]  # fmt: skip
    assert tool_calls(body) == [call("list")]
    body["messages"] += [{"role": "tool", "tool_name": "list", "content": "[2]"}]
    assert tool_calls(body) is None
    assert tool_answer(body) == "list returned: [1] list returned: [2]"


def test_a_new_question_starts_over_and_no_tools_means_no_calls() -> None:
    messages = [
        {"role": "user", "content": "list()"},
        {"role": "tool", "tool_name": "list", "content": "[1]"},
        {"role": "user", "content": "list() again"},
    ]
    assert tool_calls({"tools": [LIST], "messages": messages}) == [call("list")]
    assert tool_calls({"messages": messages}) is None
