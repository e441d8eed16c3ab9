"""The official ``ollama`` Python client (sync and async) parses every simulator answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import ollama
import pytest

from simulators.ollama import BUSY_MESSAGE, OllamaSimulator

FINDING = {
    "type": "object",
    "properties": {
        "severity": {"type": "string", "enum": ["normal", "warning", "critical"]},
        "summary": {"type": "string"},
        "suspected_causes": {"type": "array", "items": {"type": "string"}},
        "actions": {"type": "array", "items": {"type": "string"}},
        "points": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    },
    "required": ["severity", "summary", "suspected_causes", "actions", "points"],
    "additionalProperties": False,
}
USER = [{"role": "user", "content": "How is pump 3?"}]


def sync_call(sim: OllamaSimulator, fn: Any) -> Any:
    """Run a blocking official-client call in a thread while the simulator serves."""

    def run() -> Any:
        with ollama.Client(host=sim.url) as client:
            return fn(client)

    return asyncio.to_thread(run)


async def test_sync_client_lists_models_with_details(sim: OllamaSimulator) -> None:
    listed = await sync_call(sim, lambda c: c.list())
    names = [m.model for m in listed.models]
    assert names == ["llama3.2:latest", "nomic-embed-text:latest"]
    assert listed.models[0].details.family == "llama"
    assert listed.models[0].modified_at is not None


async def test_sync_client_generates_without_streaming(sim: OllamaSimulator) -> None:
    answer = await sync_call(sim, lambda c: c.generate(model="llama3.2", prompt="Hello"))
    assert answer.done is True and answer.done_reason == "stop"
    assert answer.response.strip()
    assert answer.eval_count and answer.eval_duration and answer.total_duration
    assert answer.context


async def test_sync_client_chats_streamed(sim: OllamaSimulator) -> None:
    def chat(client: ollama.Client) -> list[ollama.ChatResponse]:
        return list(client.chat(model="llama3.2", messages=USER, stream=True))

    parts = await sync_call(sim, chat)
    assert len(parts) > 2
    assert all(not p.done for p in parts[:-1])
    assert parts[-1].done and parts[-1].done_reason == "stop"
    assert all(p.message.role == "assistant" for p in parts)


async def test_sync_client_sees_unknown_model_as_404(sim: OllamaSimulator) -> None:
    def call(client: ollama.Client) -> None:
        client.generate(model="mistral", prompt="x")

    with pytest.raises(ollama.ResponseError) as caught:
        await sync_call(sim, call)
    assert caught.value.status_code == 404
    # Ollama's text first, then what this server has and how to get the model asked for
    assert caught.value.error == (
        "model 'mistral' not found: the Ollama simulator has llama3.2:latest, "
        "nomic-embed-text:latest; ask for one of them, or start it with that model: "
        "`mcptool simulate ollama --model mistral`"
    )


async def test_async_client_generates_streamed_with_a_final_done_chunk(
    sim: OllamaSimulator,
) -> None:
    async with ollama.AsyncClient(host=sim.url) as client:
        parts = [p async for p in await client.generate("llama3.2", "Hello", stream=True)]
    text = "".join(p.response for p in parts)
    final = parts[-1]
    assert final.done and final.done_reason == "stop" and final.context
    assert final.eval_count == len(parts) - 1
    assert text.endswith(".")


async def test_async_client_chats_without_streaming(sim: OllamaSimulator) -> None:
    async with ollama.AsyncClient(host=sim.url) as client:
        answer = await client.chat(model="llama3.2", messages=USER)
    assert answer.message.role == "assistant" and answer.message.content
    assert answer.done_reason == "stop"


async def test_answers_are_deterministic_for_the_same_request(sim: OllamaSimulator) -> None:
    async with ollama.AsyncClient(host=sim.url) as client:
        first = await client.generate("llama3.2", "Same prompt")
        second = await client.generate("llama3.2", "Same prompt")
        other = await client.generate("llama3.2", "Other prompt")
    assert first.response == second.response
    assert first.response != other.response


@pytest.mark.parametrize("stream", [False, True])
async def test_structured_output_satisfies_the_finding_schema(
    sim: OllamaSimulator, stream: bool
) -> None:
    async with ollama.AsyncClient(host=sim.url) as client:
        if stream:
            parts = [
                p async for p in await client.chat("llama3.2", USER, format=FINDING, stream=True)
            ]
            content = "".join(p.message.content for p in parts)
        else:
            content = (await client.chat("llama3.2", USER, format=FINDING)).message.content
    jsonschema.validate(json.loads(content), FINDING)


async def test_format_json_answers_a_json_object(sim: OllamaSimulator) -> None:
    async with ollama.AsyncClient(host=sim.url) as client:
        answer = await client.generate("llama3.2", "Hello", format="json")
    assert isinstance(json.loads(answer.response), dict)


async def test_empty_prompt_loads_and_keep_alive_zero_unloads(sim: OllamaSimulator) -> None:
    async with ollama.AsyncClient(host=sim.url) as client:
        loaded = await client.generate("llama3.2")
        running = await client.ps()
        unloaded = await client.generate("llama3.2", keep_alive=0)
        after = await client.ps()
    assert loaded.done_reason == "load"
    assert [m.model for m in running.models] == ["llama3.2:latest"]
    assert running.models[0].expires_at is not None
    assert unloaded.done_reason == "unload"
    assert after.models == []


async def test_show_includes_model_info_and_embed_returns_vectors(sim: OllamaSimulator) -> None:
    async with ollama.AsyncClient(host=sim.url) as client:
        shown = await client.show("llama3.2")
        embedded = await client.embed(model="nomic-embed-text", input=["one", "two"])
    assert shown.modelinfo and shown.modelinfo["general.architecture"] == "llama"
    assert shown.capabilities == ["completion", "tools"]
    assert len(embedded.embeddings) == 2
    assert len(embedded.embeddings[0]) == 768


@pytest.mark.parametrize(
    ("status", "message"),
    [(500, "llama runner process has terminated"), (503, BUSY_MESSAGE), (400, "bad input")],
)
async def test_injected_errors_reach_the_official_client_with_their_status(
    sim: OllamaSimulator, status: int, message: str
) -> None:
    sim.inject("status", status=status, message=message)
    async with ollama.AsyncClient(host=sim.url) as client:
        with pytest.raises(ollama.ResponseError) as caught:
            await client.generate("llama3.2", "x")
    assert caught.value.status_code == status
    assert caught.value.error == message


async def test_error_line_mid_stream_reaches_the_official_client(sim: OllamaSimulator) -> None:
    sim.inject("error_line", after_chunks=3, message="out of memory")
    seen = []
    async with ollama.AsyncClient(host=sim.url) as client:
        with pytest.raises(ollama.ResponseError) as caught:
            async for part in await client.generate("llama3.2", "x", stream=True):
                seen.append(part)
    assert caught.value.error == "out of memory"
    assert len(seen) == 3


async def test_full_queue_answers_503_server_busy() -> None:
    async with OllamaSimulator(parallel=1, queue=1) as sim:
        sim.inject("stall", after_chunks=1, seconds=None)  # the first holds the only slot
        async with ollama.AsyncClient(host=sim.url) as client:
            first = asyncio.create_task(client.generate("llama3.2", "a"))
            second = None
            try:
                await poll(lambda: sim.counters.in_flight == 1)
                second = asyncio.create_task(client.generate("llama3.2", "b"))
                await poll(lambda: sim.counters.waiting == 1)
                with pytest.raises(ollama.ResponseError) as caught:
                    await client.generate("llama3.2", "c")
            finally:
                for task in (first, second):
                    if task is not None:
                        task.cancel()
                await asyncio.gather(first, *([second] if second else []), return_exceptions=True)
    assert caught.value.status_code == 503
    assert caught.value.error == BUSY_MESSAGE
    assert sim.counters.rejected_busy == 1


async def poll(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)
