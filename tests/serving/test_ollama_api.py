"""The Ollama API of ``mcptool model serve``, in front of a scripted generator.

The generator here stands in for llama.cpp only: the HTTP server, the wire format and
the scheduling under test are the real ones, and the official ``ollama`` client and
mcptool's own client read every answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jsonschema
import ollama
import pytest

from mcptool.errors import UsageError
from mcptool.ollama import ModelNotFound, OllamaBusy, OllamaClient, RetryPolicy, Timeouts
from mcptool.serving.generator import Done, Prompt, ToolCalls
from mcptool.serving.gguf import GGUFInfo
from mcptool.serving.ollama_api import MODEL_SERVE, OllamaServer, same_model
from mcptool.serving.scheduler import Shape
from mcptool.serving.wire import BUSY_MESSAGE

NAME = "tiny:0.1b"
SCHEMA = {
    "type": "object",
    "properties": {"severity": {"type": "string", "enum": ["normal", "critical"]}},
    "required": ["severity"],
}


class ScriptedGenerator:
    """Answers with fixed words; a held generation waits for ``release`` after a word."""

    def __init__(self) -> None:
        self.info = GGUFInfo(
            Path("/models/tiny.gguf"),
            123,
            {
                "general.architecture": "qwen2",
                "general.size_label": "0.1B",
                "general.file_type": 15,
                "qwen2.context_length": 32768,
                "tokenizer.chat_template": "{{ messages }}",
            },
        )
        self.loads: list[Shape] = []
        self.unloads = 0
        self.prompts: list[Prompt] = []
        self.hold = False
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def load(self, shape: Shape) -> Shape:
        self.loads.append(shape)
        return Shape(shape.num_ctx or 4096, shape.num_thread or 2)

    async def unload(self) -> None:
        self.unloads += 1

    async def generate(self, prompt: Prompt) -> AsyncIterator[str | Done]:
        self.prompts.append(prompt)
        words = ['{"severity": "critical"}'] if prompt.format else ["Pump ", "3 ", "is ", "ok."]
        limit = prompt.options.get("num_predict")
        cut = isinstance(limit, int) and limit < len(words)
        self.started.set()
        for word in words[:limit] if cut else words:
            yield word
            if self.hold:  # after the first word, so that the headers have left
                await self.release.wait()
        yield Done("length" if cut else "stop", 7, 1_000, len(words), 2_000)


@pytest.fixture
def generator() -> ScriptedGenerator:
    return ScriptedGenerator()


@pytest.fixture
async def server(generator: ScriptedGenerator) -> AsyncIterator[OllamaServer]:
    async with OllamaServer(generator, NAME, parallel=1, queue=0) as running:
        yield running


def client(server: OllamaServer) -> OllamaClient:
    return OllamaClient(
        server.url, retry=RetryPolicy(attempts=1), timeouts=Timeouts(total=30), max_in_flight=4
    )


def test_a_name_without_a_tag_means_latest() -> None:
    assert same_model("tiny", "tiny:latest") and same_model("Tiny:0.1b", "tiny:0.1b")
    assert not same_model("tiny", "tiny:0.1b")


async def test_the_official_client_lists_shows_and_sees_the_version(server: OllamaServer) -> None:
    async with ollama.AsyncClient(host=server.url) as c:
        listed = await c.list()
        assert [m.model for m in listed.models] == [NAME]
        assert listed.models[0].details.quantization_level == "Q4_K_M"
        assert listed.models[0].details.family == "qwen2"
        shown = await c.show(NAME)
        assert shown.modelinfo["qwen2.context_length"] == 32768
        assert shown.template == "{{ messages }}"
        assert (await c.ps()).models == []  # nothing loaded until asked
    async with httpx.AsyncClient() as h:
        assert (await h.get(server.url + "/")).text == "Ollama is running"
        assert "version" in (await h.get(server.url + "/api/version")).json()


async def test_generate_streams_ollama_chunks_with_nanosecond_figures(
    server: OllamaServer, generator: ScriptedGenerator
) -> None:
    async with ollama.AsyncClient(host=server.url) as c:
        parts = [p async for p in await c.generate(NAME, "How is pump 3?", stream=True)]
    assert "".join(p.response for p in parts) == "Pump 3 is ok."
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    last = parts[-1]
    assert last.done_reason == "stop"
    assert (last.prompt_eval_count, last.prompt_eval_duration) == (7, 1_000)
    assert (last.eval_count, last.eval_duration) == (4, 2_000)
    assert last.total_duration and last.load_duration
    assert generator.prompts[0].messages == [{"role": "user", "content": "How is pump 3?"}]


async def test_generate_puts_system_before_the_prompt_and_raw_skips_the_template(
    server: OllamaServer, generator: ScriptedGenerator
) -> None:
    async with ollama.AsyncClient(host=server.url) as c:
        await c.generate(NAME, "hi", system="Be brief.")
        await c.generate(NAME, "<|im_start|>hi", raw=True)
    assert generator.prompts[0].messages[0] == {"role": "system", "content": "Be brief."}
    assert generator.prompts[1].raw == "<|im_start|>hi"


async def test_chat_without_streaming_and_num_predict_ends_with_length(
    server: OllamaServer, generator: ScriptedGenerator
) -> None:
    async with ollama.AsyncClient(host=server.url) as c:
        answer = await c.chat(
            NAME,
            [{"role": "user", "content": "Status?"}],
            options={"num_predict": 2, "temperature": 0, "seed": 1},
        )
    assert answer.message.content == "Pump 3 "
    assert answer.done_reason == "length"
    assert generator.prompts[0].options == {"num_predict": 2, "temperature": 0, "seed": 1}


async def test_mcptools_client_gets_a_schema_answer_that_validates(
    server: OllamaServer, generator: ScriptedGenerator
) -> None:
    async with client(server) as c:
        result = await c.chat(NAME, [{"role": "user", "content": "Rate it"}], format=SCHEMA)
    jsonschema.validate(result.data, SCHEMA)
    assert generator.prompts[0].format == SCHEMA
    assert result.metrics.eval_count == 1


async def test_another_model_name_is_404_saying_what_is_served_and_how_to_serve_it(
    server: OllamaServer,
) -> None:
    advice = (
        "mcptool model serve has only tiny:0.1b here; ask for it, or serve another GGUF "
        "with `mcptool model serve --model FILE.gguf --name llama3.2`"
    )
    async with ollama.AsyncClient(host=server.url) as c:
        with pytest.raises(ollama.ResponseError) as caught:
            await c.generate("llama3.2", "x")
    assert caught.value.status_code == 404
    assert caught.value.error == f"model 'llama3.2' not found: {advice}"
    async with client(server) as c:
        with pytest.raises(ModelNotFound) as ours:
            await c.generate("llama3.2", "x")
    # not `ollama pull`: there is nothing to pull into this server
    assert str(ours.value) == f"model llama3.2 is not on the server at {server.url}: {advice}"


async def test_every_answer_names_the_server_as_mcptools_not_ollamas(
    server: OllamaServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as h:
        answers = [
            await h.get("/api/version"),
            await h.post("/api/show", json={"model": "other"}),
            await h.get("/api/nothing"),
        ]
    assert [a.headers["server"] for a in answers] == [MODEL_SERVE] * 3
    assert MODEL_SERVE.startswith("mcptool-model-serve/")
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"not http at all\r\n\r\n")  # refused by h11, before any handler
    refused = await reader.read()
    writer.close()
    assert refused.startswith(b"HTTP/1.1 400") and f"server: {MODEL_SERVE}".encode() in refused


async def test_a_full_queue_is_503_server_busy(
    server: OllamaServer, generator: ScriptedGenerator
) -> None:
    generator.hold = True
    async with httpx.AsyncClient(timeout=30) as h:
        body = {"model": NAME, "prompt": "long answer"}
        async with h.stream("POST", server.url + "/api/generate", json=body) as running:
            assert running.status_code == 200  # headers came: it holds the one slot
            busy = await h.post(server.url + "/api/generate", json=body)
            assert busy.status_code == 503
            assert busy.json() == {"error": BUSY_MESSAGE}
            generator.release.set()
            lines = [json.loads(line) async for line in running.aiter_lines() if line]
    assert lines[-1]["done"] is True
    assert server.counters.rejected_busy == 1
    generator.hold = False
    async with client(server) as c:
        with pytest.raises(OllamaBusy):
            generator.hold, generator.release = True, asyncio.Event()
            async with c.stream_generate(NAME, "one") as first:
                await first.__anext__()
                await c.generate(NAME, "two")


async def test_preload_loads_once_and_keep_alive_zero_unloads(
    server: OllamaServer, generator: ScriptedGenerator
) -> None:
    async with ollama.AsyncClient(host=server.url) as c:
        loaded = await c.generate(NAME, "")
        assert (loaded.done, loaded.done_reason) == (True, "load")
        running = (await c.ps()).models
        assert [m.model for m in running] == [NAME] and running[0].context_length == 4096
        await c.generate(NAME, "hi")
        assert len(generator.loads) == 1
        unloaded = await c.chat(NAME, [], keep_alive=0)
        assert unloaded.done_reason == "unload"
        assert (await c.ps()).models == [] and generator.unloads == 1


async def test_num_ctx_and_num_thread_reach_the_load(
    server: OllamaServer, generator: ScriptedGenerator
) -> None:
    async with ollama.AsyncClient(host=server.url) as c:
        await c.generate(NAME, "hi", options={"num_ctx": 2048, "num_thread": 1})
        await c.generate(NAME, "hi", options={"num_ctx": 2048})
    assert generator.loads == [Shape(2048, 1)]


async def test_bad_bodies_are_400_with_ollamas_texts(server: OllamaServer) -> None:
    async with httpx.AsyncClient() as h:
        url = server.url + "/api/generate"
        assert (await h.post(url, content=b"{")).status_code == 400
        bad_format = await h.post(url, json={"model": NAME, "prompt": "x", "format": 3})
        assert bad_format.status_code == 400 and "invalid format" in bad_format.json()["error"]
        bad_ctx = await h.post(url, json={"model": NAME, "prompt": "x", "options": {"num_ctx": -1}})
        assert bad_ctx.status_code == 400
        embed = await h.post(server.url + "/api/embed", json={"model": NAME, "input": "x"})
        assert embed.status_code == 400 and "embeddings" in embed.json()["error"]
        assert (await h.get(server.url + "/api/pull")).status_code == 404


async def test_a_client_that_leaves_stops_the_generation_and_frees_the_slot(
    server: OllamaServer, generator: ScriptedGenerator
) -> None:
    generator.hold = True
    async with httpx.AsyncClient(timeout=30) as h:
        body = {"model": NAME, "prompt": "long"}
        async with h.stream("POST", server.url + "/api/generate", json=body) as running:
            assert running.status_code == 200
    # the slot is free again: the next request runs instead of being refused
    generator.hold = False
    async with ollama.AsyncClient(host=server.url) as c:
        assert (await c.generate(NAME, "hi")).done
    assert server.counters.in_flight == 0


async def test_a_model_past_its_keep_alive_frees_its_memory(
    server: OllamaServer, generator: ScriptedGenerator
) -> None:
    async with ollama.AsyncClient(host=server.url) as c:
        await c.generate(NAME, "hi", keep_alive="50ms")
        async with asyncio.timeout(5):
            while generator.unloads == 0:
                await asyncio.sleep(0.01)
        assert (await c.ps()).models == []
        await c.generate(NAME, "hi")  # loads again
    assert len(generator.loads) == 2


async def test_a_context_past_the_models_trained_one_is_clamped_to_it(
    server: OllamaServer, generator: ScriptedGenerator
) -> None:
    async with ollama.AsyncClient(host=server.url) as c:
        await c.generate(NAME, "hi", options={"num_ctx": 10_000_000})
    assert generator.loads == [Shape(32768, 0)]


async def test_a_model_that_cannot_load_is_a_500_with_the_reason(
    server: OllamaServer, generator: ScriptedGenerator
) -> None:
    async def cannot(shape: Shape) -> Shape:
        raise UsageError("llama.cpp cannot load /models/tiny.gguf: out of memory")

    generator.load = cannot  # type: ignore[method-assign]
    async with ollama.AsyncClient(host=server.url) as c:
        for call in (c.generate(NAME, "hi"), c.generate(NAME, "")):
            with pytest.raises(ollama.ResponseError) as caught:
                await call
            assert caught.value.status_code == 500
            assert "out of memory" in caught.value.error
    assert server.counters.waiting == 0 and server.counters.in_flight == 0


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_values",
            "description": "Current values of a device",
            "parameters": {"type": "object", "properties": {"device": {"type": "string"}}},
        },
    }
]
CALL = {"function": {"name": "read_values", "arguments": {"device": "boiler"}}}


class ToolGenerator(ScriptedGenerator):
    """A model whose template takes tools: it calls read_values until a result came."""

    def __init__(self) -> None:
        super().__init__()
        self.info.metadata["tokenizer.chat_template"] = "{% if tools %}{{ tools }}{% endif %}"

    async def generate(self, prompt: Prompt) -> AsyncIterator[str | ToolCalls | Done]:
        self.prompts.append(prompt)
        if prompt.tools and prompt.messages[-1]["role"] == "user":
            yield ToolCalls([CALL])
        else:
            yield "The boiler is at 91.5 °C."
        yield Done("stop", 7, 1_000, 5, 2_000)


@pytest.fixture
async def tool_server() -> AsyncIterator[OllamaServer]:
    async with OllamaServer(ToolGenerator(), NAME) as running:
        yield running


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_the_official_client_gets_tool_calls_in_ollamas_shape(
    tool_server: OllamaServer, stream: bool
) -> None:
    question = [{"role": "user", "content": "How hot is the boiler?"}]
    async with ollama.AsyncClient(host=tool_server.url) as c:
        assert "tools" in (await c.show(NAME)).capabilities
        if stream:
            parts = [p async for p in await c.chat(NAME, question, tools=TOOLS, stream=True)]
        else:
            parts = [await c.chat(NAME, question, tools=TOOLS)]
    calls = [call for p in parts for call in p.message.tool_calls or ()]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("read_values", {"device": "boiler"})
    ]
    assert parts[-1].done and parts[-1].done_reason == "stop"
    assert "".join(p.message.content or "" for p in parts) == ""


async def test_an_agents_calls_and_tool_results_reach_the_model(tool_server: OllamaServer) -> None:
    generator = tool_server.generator
    history = [
        {"role": "user", "content": "How hot is the boiler?"},
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "content": '{"value": 91.5}', "tool_name": "read_values"},
    ]
    async with ollama.AsyncClient(host=tool_server.url) as c:
        answer = await c.chat(NAME, history, tools=TOOLS)
    assert answer.message.content == "The boiler is at 91.5 °C."
    assert not answer.message.tool_calls
    prompt = generator.prompts[-1]  # type: ignore[attr-defined]
    assert prompt.tools == TOOLS
    assert prompt.messages == history


async def test_tools_for_a_model_whose_template_takes_none_are_400(server: OllamaServer) -> None:
    async with httpx.AsyncClient() as h:
        url = server.url + "/api/chat"
        chat = {"model": NAME, "messages": [{"role": "user", "content": "x"}]}
        refused = await h.post(url, json={**chat, "tools": TOOLS})
        assert refused.status_code == 400
        assert refused.json()["error"] == f'"{NAME}" does not support tools'


async def test_tools_that_are_not_a_list_of_functions_are_400(tool_server: OllamaServer) -> None:
    async with httpx.AsyncClient() as h:
        url = tool_server.url + "/api/chat"
        chat = {"model": NAME, "messages": [{"role": "user", "content": "x"}]}
        for tools in ({"name": "x"}, [{"type": "function"}], ["read_values"]):
            bad = await h.post(url, json={**chat, "tools": tools})
            assert bad.status_code == 400 and "tools" in bad.json()["error"]
        bad_calls = {"role": "assistant", "content": "", "tool_calls": "read_values"}
        bad = await h.post(url, json={**chat, "messages": [bad_calls], "tools": TOOLS})
        assert bad.status_code == 400 and "tool_calls" in bad.json()["error"]
