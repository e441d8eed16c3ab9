"""The Ollama simulator's tool calls: which calls a question asks for, one per answer, and
the answer once every call has its result."""

from __future__ import annotations

import json

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


# -- calls chosen from a question in plain words -------------------------------------------


def tool(
    name: str, description: str, *required: str, optional: tuple[str, ...] = ()
) -> dict[str, object]:
    properties = {key: {"type": "string"} for key in (*required, *optional)}
    parameters = {"type": "object", "properties": properties, "required": list(required)}
    function = {"name": name, "description": description, "parameters": parameters}
    return {"type": "function", "function": function}


PLANT = [
    tool("list_devices", "Every device of the plant and its points."),
    tool("read_values", "The current value of a device's points.", "device",
         optional=("points",)),
    tool("read_history", "A point's readings over the minutes before end.", "device", "point",
         optional=("minutes", "limit")),
    tool("list_findings", "The analysis's recent triggers and findings.",
         optional=("device", "minutes")),
    tool("probe", "Does a Modbus device answer, and how fast.", "host"),
    tool("explain_offline", "Why a device does not answer: a read, classified.", "device"),
    tool("write_point", "Write a value to a writable point; set the current setpoint.",
         "device", "point", "value"),
]  # fmt: skip
LISTING = json.dumps(
    {"devices": [
        {"name": "boiler", "points": [{"name": "water_pressure"}, {"name": "supply_temperature"}]},
        {"name": "power_meter", "points": [{"name": "voltage_l1"}]},
    ]}
)  # fmt: skip


def chat(question: str, *results: tuple[str, str]) -> dict:  # type: ignore[type-arg]
    messages = [{"role": "user", "content": question}]
    for name, content in results:
        messages += [{"role": "assistant", "content": ""},
                     {"role": "tool", "tool_name": name, "content": content}]  # fmt: skip
    return {"tools": PLANT, "messages": messages}


def test_a_plain_question_lists_the_devices_first() -> None:
    assert tool_calls(chat("why is the boiler running hot?")) == [call("list_devices")]


def test_then_the_values_and_findings_of_the_device_it_names() -> None:
    body = chat("why is the boiler running hot?", ("list_devices", LISTING))
    assert tool_calls(body) == [call("read_values", device="boiler")]
    body = chat("why is the boiler running hot?", ("list_devices", LISTING),
                ("read_values", '{"values": {"supply_temperature": 97.0}}'))  # fmt: skip
    assert tool_calls(body) == [call("list_findings", device="boiler")]
    body["messages"] += [{"role": "tool", "tool_name": "list_findings", "content": "[]"}]
    assert tool_calls(body) is None  # nothing more: it answers
    answer = tool_answer(body)
    assert answer.startswith("list_devices returned 2 devices: boiler, power_meter.")
    assert 'read_values returned: {"values": {"supply_temperature": 97.0}}' in answer


def test_current_values_that_fail_are_followed_by_the_history_of_the_point_it_means() -> None:
    body = chat("why is the boiler running hot?", ("list_devices", LISTING),
                ("read_values", "error: boiler gave no current value"),
                ("list_findings", "[]"))  # fmt: skip
    history = call("read_history", device="boiler", point="supply_temperature", minutes=60,
                   limit=10)  # fmt: skip
    assert tool_calls(body) == [history]


def test_device_names_of_several_words_and_offline_questions() -> None:
    body = chat("is the power meter offline?", ("list_devices", LISTING))
    assert planned_calls("is the power meter offline?", PLANT, body["messages"][2:]) == [
        call("list_devices"),
        call("explain_offline", device="power_meter"),
    ]


def test_it_never_chooses_a_write() -> None:
    question = "set the boiler's setpoint to 60, the current one is too hot"
    plan = planned_calls(question, PLANT, [{"role": "tool", "content": LISTING}])
    assert "write_point" not in [c["function"]["name"] for c in plan]
    assert call("read_values", device="boiler") in plan


def test_named_calls_win_over_chosen_ones() -> None:
    question = 'why is the boiler hot? probe({"host": "127.0.0.1"})'
    assert planned_calls(question, PLANT) == [call("probe", host="127.0.0.1")]
