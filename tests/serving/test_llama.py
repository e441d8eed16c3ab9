"""What an Ollama request becomes for llama.cpp, and how its chunks are read back.

No model: llama.cpp's Python surface is faked where a generation is read back; the tests
with llama.cpp running are test_model_serve.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mcptool.serving.generator import Done, Prompt, ToolCalls
from mcptool.serving.gguf import GGUFInfo
from mcptool.serving.llama import LlamaGenerator, chunk_calls, chunk_text, request_body
from mcptool.serving.scheduler import Shape

CHAT = [{"role": "user", "content": "hi"}]


def test_ollama_options_become_llama_cpp_fields() -> None:
    options = {
        "temperature": 0,
        "seed": 42,
        "top_k": 20,
        "top_p": 0.9,
        "repeat_penalty": 1.1,
        "num_keep": 4,
        "num_predict": 64,
        "stop": "\n\n",
        "num_ctx": 2048,  # a load option, not a sampling one
    }
    body = request_body(Prompt(messages=CHAT, options=options))
    assert body == {
        "stream": True,
        "messages": CHAT,
        "temperature": 0,
        "seed": 42,
        "top_k": 20,
        "top_p": 0.9,
        "repeat_penalty": 1.1,
        "n_keep": 4,
        "max_tokens": 64,
        "stop": ["\n\n"],
    }


def test_num_predict_minus_one_means_no_limit() -> None:
    assert "max_tokens" not in request_body(Prompt(messages=CHAT, options={"num_predict": -1}))


def test_a_schema_and_json_constrain_sampling() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert request_body(Prompt(messages=CHAT, format=schema))["json_schema"] == schema
    assert request_body(Prompt(messages=CHAT, format="json"))["json_schema"] == {"type": "object"}
    assert "json_schema" not in request_body(Prompt(messages=CHAT))


def test_raw_is_a_plain_completion_without_the_chat_template() -> None:
    body = request_body(Prompt(raw="<|im_start|>user\nhi", options={"stop": ["a", "b"]}))
    assert body["prompt"] == "<|im_start|>user\nhi" and "messages" not in body
    assert body["stop"] == ["a", "b"]


def test_text_comes_from_chat_deltas_and_completion_chunks() -> None:
    assert chunk_text({"choices": [{"delta": {"content": "Hel"}}]}) == "Hel"
    assert chunk_text({"choices": [{"delta": {"role": "assistant", "content": None}}]}) == ""
    assert chunk_text({"choices": [{"text": "lo", "finish_reason": None}]}) == "lo"
    assert chunk_text({"choices": [], "timings": {}}) == ""


def test_tools_and_an_agents_history_reach_llama_cpp_in_openais_shape() -> None:
    tools = [{"type": "function", "function": {"name": "read_values", "parameters": {}}}]
    call = {"function": {"name": "read_values", "arguments": {"device": "boiler"}}}
    history = [
        {"role": "user", "content": "How hot is the boiler?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": '{"value": 91.5}', "tool_name": "read_values"},
    ]
    body = request_body(Prompt(messages=history, tools=tools))
    assert body["tools"] == tools
    user, assistant, result = body["messages"]
    assert user == history[0]
    assert assistant["tool_calls"] == [
        {
            "id": "call_1_0",
            "type": "function",
            "function": {"name": "read_values", "arguments": '{"device": "boiler"}'},
        }
    ]
    assert result == {"role": "tool", "content": '{"value": 91.5}', "name": "read_values"}
    assert "tools" not in request_body(Prompt(messages=CHAT))


def test_calls_llama_cpp_parsed_are_joined_from_their_pieces() -> None:
    parsed: dict[int, dict[str, str]] = {}
    pieces = [
        {"index": 0, "id": "a", "type": "function", "function": {"name": "read_values"}},
        {"index": 0, "function": {"arguments": '{"device": '}},
        {"index": 0, "function": {"arguments": '"boiler"}'}},
    ]
    for piece in pieces:
        chunk_calls({"choices": [{"delta": {"tool_calls": [piece]}}]}, parsed)
    assert parsed == {0: {"name": "read_values", "arguments": '{"device": "boiler"}'}}


class FakeLlamaCpp:
    """The part of xllamacpp the generator uses, answering every chat with set chunks."""

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks

    def CommonParams(self) -> SimpleNamespace:  # xllamacpp names them so
        return SimpleNamespace(
            model=SimpleNamespace(), cpuparams=SimpleNamespace(), cpuparams_batch=SimpleNamespace()
        )

    def Server(self, params: SimpleNamespace) -> SimpleNamespace:
        def answer(body: dict[str, Any], on_chunk: Callable[[dict[str, Any]], bool]) -> None:
            for chunk in self.chunks:
                on_chunk(chunk)

        return SimpleNamespace(handle_chat_completions=answer)


def deltas(*texts: str) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = [{"choices": [{"delta": {"content": t}}]} for t in texts]
    return [*chunks, {"choices": [{"delta": {}, "finish_reason": "stop"}]}]


async def answer(chunks: list[dict[str, Any]], prompt: Prompt) -> list[Any]:
    info = GGUFInfo(Path("/models/m.gguf"), 1, {"general.architecture": "qwen2"})
    generator = LlamaGenerator(info, threads=1, ctx=512, parallel=1, runtime=FakeLlamaCpp(chunks))
    try:
        await generator.load(Shape())
        return [item async for item in generator.generate(prompt)]
    finally:
        await generator.close()


TOOLS = [{"type": "function", "function": {"name": "read_values", "parameters": {}}}]
READ = {"function": {"name": "read_values", "arguments": {"device": "boiler"}}}


async def test_a_call_the_model_wrote_as_text_comes_out_as_tool_calls_not_text() -> None:
    chunks = deltas("```json\n{", '"name": "read_values", ', '"arguments": {"device": "boiler"}}')
    items = await answer([*chunks[:-1], {"choices": [{"delta": {"content": "\n```"}}]},
                          chunks[-1]], Prompt(messages=CHAT, tools=TOOLS))  # fmt: skip
    assert items[:-1] == [ToolCalls([READ])]
    assert isinstance(items[-1], Done) and items[-1].reason == "stop"


async def test_calls_llama_cpp_parsed_itself_come_out_as_tool_calls() -> None:
    call = {"index": 0, "function": {"name": "read_values", "arguments": '{"device":"boiler"}'}}
    chunks = [{"choices": [{"delta": {"tool_calls": [call]}}]}, *deltas()]
    items = await answer(chunks, Prompt(messages=CHAT, tools=TOOLS))
    assert items[:-1] == [ToolCalls([READ])]


async def test_without_tools_json_text_is_just_text() -> None:
    items = await answer(deltas('{"name": "x", ', '"arguments": {}}'), Prompt(messages=CHAT))
    assert items[:-1] == ['{"name": "x", ', '"arguments": {}}']
