"""`mcptool ask`: the agent loop over the plant's tools against the Ollama simulator, which
answers with tool calls in the shape Ollama documents (the official client parses them)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import ollama
import pytest

from mcptool.context import open_context
from mcptool.context.agent import ask
from mcptool.gateway.config import GatewayConfig
from mcptool.ollama import OllamaClient
from simulators.modbus import ModbusSimulator
from simulators.ollama import OllamaSimulator
from tests.context.conftest import plant, toml

MODEL = "llama3.2"


@pytest.fixture
async def model() -> AsyncIterator[OllamaSimulator]:
    async with OllamaSimulator(models=[MODEL]) as sim:
        yield sim


async def test_two_calls_in_order_and_an_answer_that_quotes_them(
    config: GatewayConfig, model: OllamaSimulator, boiler: ModbusSimulator
) -> None:
    question = (
        'Why is the boiler hot? read_values({"device": "boiler", "points": ["setpoint"]})'
        " then list_devices()"
    )
    async with open_context(config) as (_tools, server), OllamaClient(model.url) as client:
        answer = await ask(question, server, client, MODEL, max_steps=4)
    assert [c.name for c in answer.calls] == ["read_values", "list_devices"]
    assert answer.calls[0].arguments == {"device": "boiler", "points": ["setpoint"]}
    assert not any(c.error for c in answer.calls)
    read = json.loads(answer.calls[0].result)
    assert read["values"] == {"setpoint": boiler.value("setpoint")}
    # the answer quotes what both calls returned
    assert answer.calls[0].result in answer.text and answer.calls[1].result in answer.text
    assert f'"values":{{"setpoint":{boiler.value("setpoint")}}}' in answer.text
    assert answer.steps == 3 and not answer.stopped


async def test_a_question_in_plain_words_gets_the_calls_a_model_would_make(
    config: GatewayConfig, model: OllamaSimulator, boiler: ModbusSimulator
) -> None:
    async with open_context(config) as (_tools, server), OllamaClient(model.url) as client:
        answer = await ask("why is the boiler running hot?", server, client, MODEL)
    assert [(c.name, c.arguments) for c in answer.calls] == [
        ("list_devices", {}),
        ("read_values", {"device": "boiler"}),
        ("list_findings", {"device": "boiler"}),
    ]
    assert [c.error for c in answer.calls] == [False, False, True]
    assert "start the gateway" in answer.calls[2].result  # no spool here: a tool error
    assert answer.calls[2].result.startswith("error: no spool at ")  # one prefix, not two
    read = answer.calls[1].result
    assert json.loads(read)["values"]["setpoint"] == boiler.value("setpoint")
    assert f"read_values returned: {read}" in answer.text
    assert answer.text.startswith("list_devices returned 1 devices: boiler.")


async def test_an_unknown_tool_and_bad_arguments_are_tool_errors(
    config: GatewayConfig, model: OllamaSimulator
) -> None:
    question = (
        'frobnicate({"valve": 3}) read_values({"device": 7}) write_point({"device": "boiler"})'
    )
    async with open_context(config) as (_tools, server), OllamaClient(model.url) as client:
        answer = await ask(question, server, client, MODEL, max_steps=5)
    assert [(c.name, c.error) for c in answer.calls] == [
        ("frobnicate", True),
        ("read_values", True),
        ("write_point", True),
    ]
    assert "frobnicate" in answer.calls[0].result
    assert answer.text.count("returned: error:") == 3


async def test_the_loop_ends_at_its_step_limit(
    config: GatewayConfig, model: OllamaSimulator
) -> None:
    question = " ".join(["list_devices()"] * 5)
    async with open_context(config) as (_tools, server), OllamaClient(model.url) as client:
        answer = await ask(question, server, client, MODEL, max_steps=2)
    assert answer.steps == 2 and len(answer.calls) == 2
    assert answer.text == "" and "after 2 steps" in answer.stopped
    assert model.counters.by_path["/api/chat"] == 2


@pytest.mark.parametrize("stream", [False, True])
async def test_the_official_client_sees_tool_calls_in_ollamas_shape(
    model: OllamaSimulator, stream: bool
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read_values",
                "description": "current values",
                "parameters": {
                    "type": "object",
                    "properties": {"device": {"type": "string"}},
                    "required": ["device"],
                },
            },
        }
    ]
    messages = [{"role": "user", "content": 'read_values({"device": "boiler"})'}]
    client = ollama.AsyncClient(host=model.url)
    if stream:
        calls = []
        async for part in await client.chat(MODEL, messages, tools=tools, stream=True):
            calls.extend(part.message.tool_calls or ())
    else:
        response = await client.chat(MODEL, messages, tools=tools)
        calls = list(response.message.tool_calls or ())
        assert response.message.content == ""
    assert len(calls) == 1
    assert calls[0].function.name == "read_values"
    assert calls[0].function.arguments == {"device": "boiler"}
    # with the tool's result in the conversation, the model answers in text
    messages += [
        {"role": "assistant", "content": "", "tool_calls": [calls[0].model_dump()]},
        {"role": "tool", "tool_name": "read_values", "content": '{"value": 71.5}'},
    ]
    final = await client.chat(MODEL, messages, tools=tools)
    assert not final.message.tool_calls
    assert final.message.content == 'read_values returned: {"value": 71.5}'


async def test_the_ask_command(
    boiler: ModbusSimulator, model: OllamaSimulator, tmp_path: Path
) -> None:
    path = tmp_path / "plant.toml"
    path.write_text(toml(plant(boiler, tmp_path)))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcptool", "ask", "--config", str(path), "--ollama", model.url,
        "--json", 'read_values({"device": "boiler", "points": ["setpoint"]})',
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    result = json.loads(out)
    assert [c["name"] for c in result["calls"]] == ["read_values"]
    assert str(boiler.value("setpoint")) in result["answer"]


async def test_an_answer_with_neither_text_nor_calls_says_so(config: GatewayConfig) -> None:
    async with (
        OllamaSimulator(models=[MODEL], answer=lambda kind, body: " ") as sim,
        open_context(config) as (_tools, server),
        OllamaClient(sim.url) as client,
    ):
        answer = await ask("hello", server, client, MODEL)
    assert answer.text == "" and answer.steps == len(answer.calls) + 1
    assert answer.stopped == "the model answered with neither text nor a tool call"


async def test_the_embedded_engine_without_the_extra_is_one_line_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mcptool.analysis import embedded
    from mcptool.commands.demo import embedded_model
    from mcptool.errors import UsageError

    missing = "cannot run a local model: xllamacpp is not installed: pip install ..."
    monkeypatch.setattr(embedded, "embedded_available", lambda: missing)
    with pytest.raises(UsageError) as refused:
        async with embedded_model():
            pass
    assert str(refused.value) == f"--engine embedded: {missing}"
