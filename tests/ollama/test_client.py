"""OllamaClient against the simulator: every endpoint, streamed and not, structured output."""

from __future__ import annotations

import json

import pytest

from mcptool.errors import UsageError
from mcptool.ollama import (
    Chunk,
    InvalidStructuredOutput,
    ModelNotFound,
    OllamaBadRequest,
    OllamaClient,
    normalize_url,
)
from simulators.ollama import OllamaSimulator

FINDING = {
    "type": "object",
    "properties": {
        "severity": {"type": "string", "enum": ["normal", "warning", "critical"]},
        "summary": {"type": "string", "minLength": 1},
        "suspected_causes": {"type": "array", "items": {"type": "string"}},
        "actions": {"type": "array", "items": {"type": "string"}},
        "points": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["severity", "summary", "suspected_causes", "actions", "points"],
    "additionalProperties": False,
}
USER = [{"role": "user", "content": "How is pump 3?"}]


async def test_generate_returns_the_whole_text_and_figures(client: OllamaClient) -> None:
    result = await client.generate("llama3.2", "Hello")
    assert result.text.endswith(".") and result.done_reason == "stop"
    assert result.context
    m = result.metrics
    assert m.eval_count > 0 and m.eval_s > 0 and m.tokens_per_s > 0
    assert m.prompt_eval_count > 0 and m.total_s > 0 and m.attempts == 1


@pytest.mark.parametrize("stream", [True, False])
async def test_generate_is_the_same_streamed_or_not(client: OllamaClient, stream: bool) -> None:
    reference = await client.generate("llama3.2", "Same")
    result = await client.generate("llama3.2", "Same", stream=stream)
    assert result.text == reference.text


async def test_chat_streams_chunks_to_on_chunk(client: OllamaClient) -> None:
    seen: list[Chunk] = []
    result = await client.chat("llama3.2", USER, on_chunk=seen.append)
    assert "".join(c.text for c in seen) == result.text
    assert seen[-1].done and not any(c.done for c in seen[:-1])
    assert result.message == {"role": "assistant", "content": result.text}


async def test_stream_chat_yields_chunks_then_a_result(client: OllamaClient) -> None:
    async with client.stream_chat("llama3.2", USER) as stream:
        texts = [chunk.text async for chunk in stream]
    assert stream.result is not None
    assert "".join(texts) == stream.result.text
    assert stream.result.metrics.eval_count == len(texts) - 1


async def test_options_and_keep_alive_are_passed_through(
    client: OllamaClient, sim: OllamaSimulator
) -> None:
    result = await client.generate("llama3.2", "Hello", options={"num_predict": 3, "seed": 1})
    assert result.done_reason == "length" and result.metrics.eval_count == 3
    await client.generate("llama3.2", "Hello", keep_alive=0)
    assert not sim.is_loaded("llama3.2")


async def test_preload_and_unload(client: OllamaClient, sim: OllamaSimulator) -> None:
    loaded = await client.preload("llama3.2", keep_alive="10m")
    assert loaded.done_reason == "load"
    assert [m.name for m in await client.running_models()] == ["llama3.2:latest"]
    unloaded = await client.unload("llama3.2")
    assert unloaded.done_reason == "unload"
    assert await client.running_models() == []


async def test_version_tags_show_and_embed(client: OllamaClient) -> None:
    assert await client.ping()
    assert await client.version() == "0.12.6"
    models = await client.list_models()
    assert [m.name for m in models] == ["llama3.2:latest", "nomic-embed-text:latest"]
    assert models[0].family == "llama" and models[0].size > 0
    shown = await client.show("llama3.2")
    assert shown["model_info"]["general.architecture"] == "llama"
    embedded = await client.embed("nomic-embed-text", ["a", "b"])
    assert len(embedded.vectors) == 2 and len(embedded.vectors[0]) == 768


@pytest.mark.parametrize("kind", ["generate", "chat"])
async def test_structured_output_is_parsed_and_validated(client: OllamaClient, kind: str) -> None:
    if kind == "generate":
        result = await client.generate("llama3.2", "How is pump 3?", format=FINDING)
    else:
        result = await client.chat("llama3.2", USER, format=FINDING)
    assert result.data == json.loads(result.text)
    assert result.data["severity"] in ("normal", "warning", "critical")


async def test_invalid_structured_output_gets_one_repair_retry(
    client: OllamaClient, sim: OllamaSimulator
) -> None:
    sim.inject("invalid_output", output="Sure! The pump is fine.")
    result = await client.chat("llama3.2", USER, format=FINDING)
    assert result.data["severity"] in ("normal", "warning", "critical")
    assert sim.counters.by_path["/api/chat"] == 2
    assert result.metrics.attempts == 2


@pytest.mark.parametrize(
    "output", ["not json at all", '{"severity": "fine", "summary": "ok"}'], ids=["json", "schema"]
)
async def test_output_still_invalid_after_repair_is_a_typed_error(
    client: OllamaClient, sim: OllamaSimulator, output: str
) -> None:
    sim.inject("invalid_output", output=output, times=2)
    with pytest.raises(InvalidStructuredOutput) as caught:
        await client.generate("llama3.2", "How is pump 3?", format=FINDING)
    assert "model llama3.2 gave no valid structured output" in str(caught.value)
    assert caught.value.raw == output


async def test_format_json_parses_any_json(client: OllamaClient) -> None:
    result = await client.generate("llama3.2", "Hello", format="json")
    assert isinstance(result.data, dict)


async def test_an_unknown_model_on_the_simulator_gets_its_advice_not_ollama_pull(
    client: OllamaClient, sim: OllamaSimulator
) -> None:
    with pytest.raises(ModelNotFound) as caught:
        await client.chat("qwen3", USER)
    assert str(caught.value) == (
        f"model qwen3 is not on the server at {sim.url}: the Ollama simulator has "
        "llama3.2:latest, nomic-embed-text:latest; ask for one of them, or start it with "
        "that model: `mcptool simulate ollama --model qwen3`"
    )


async def test_a_404_as_ollama_sends_it_says_how_to_pull_the_model(
    client: OllamaClient, sim: OllamaSimulator
) -> None:
    # Ollama's own text has no advice after "not found: ": the client's is `ollama pull`
    message = 'model "llama3.2" not found, try pulling it first'
    sim.inject("status", status=404, message=message, paths=("/api/chat",))
    with pytest.raises(ModelNotFound) as caught:
        await client.chat("llama3.2", USER)
    assert str(caught.value) == "model llama3.2 is not pulled: run `ollama pull llama3.2`"


async def test_a_bad_request_is_not_retried(client: OllamaClient, sim: OllamaSimulator) -> None:
    with pytest.raises(OllamaBadRequest) as caught:
        await client.generate("llama3.2", "x", keep_alive="soon")
    assert caught.value.status == 400
    assert sim.counters.by_path["/api/generate"] == 1


async def test_blank_lines_in_a_stream_are_tolerated(
    client: OllamaClient, sim: OllamaSimulator
) -> None:
    reference = await client.generate("llama3.2", "x")
    sim.inject("blank_lines")
    result = await client.generate("llama3.2", "x")
    assert sim.counters.faults_fired == 1
    assert result.text == reference.text


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:11434"),
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost/", "http://localhost:11434"),
        ("0.0.0.0:11434", "http://127.0.0.1:11434"),
        ("[::1]:9", "http://[::1]:9"),
    ],
)
def test_urls_are_normalized_like_ollama_host(given: str, url: str) -> None:
    assert normalize_url(given) == url


async def test_sequential_calls_reuse_one_pooled_connection(
    client: OllamaClient, sim: OllamaSimulator
) -> None:
    for i in range(5):
        async with client.stream_generate("llama3.2", f"p{i}") as stream:
            await stream.consume()
        await client.generate("llama3.2", f"q{i}")
        await client.list_models()
    assert sim.connections_accepted == 1


async def test_a_stream_must_be_opened_with_async_with(client: OllamaClient) -> None:
    stream = client.stream_generate("llama3.2", "x")
    with pytest.raises(RuntimeError, match="async with"):
        async for _chunk in stream:
            pass


@pytest.mark.parametrize(
    "fmt", [{"type": "nonsense"}, "yaml"], ids=["bad-schema", "unknown-format"]
)
async def test_a_bad_format_is_refused_before_calling_the_server(
    client: OllamaClient, sim: OllamaSimulator, fmt: object
) -> None:
    with pytest.raises(UsageError, match="format"):
        await client.generate("llama3.2", "x", format=fmt)  # type: ignore[arg-type]
    assert sim.counters.requests == 0
