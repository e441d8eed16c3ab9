"""``mcptool model serve`` with the real packaged model, read by the official ``ollama``
client and by mcptool's own.

One server for the module (a load is seconds and 600 MB), started as the command a user
runs, with ``--parallel 1 --queue 0``: every test waits for its answer's end, so only
the busy test ever overlaps two requests. Answers are whatever the model says: the tests
check their form (Ollama's chunks, figures, valid JSON against a schema), not words.
Without the ``local-model`` extra they skip with the install hint; under CI they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import jsonschema
import ollama
import pytest

from mcptool.ollama import ModelNotFound, OllamaBusy, OllamaClient, RetryPolicy, Timeouts
from mcptool.serving.wire import BUSY_MESSAGE

pytestmark = pytest.mark.slow

NAME = "qwen2.5-coder:0.5b"
SCHEMA = {
    "type": "object",
    "properties": {
        "severity": {"type": "string", "enum": ["normal", "warning", "critical"]},
        "summary": {"type": "string", "maxLength": 80},
    },
    "required": ["summary", "severity"],
    "additionalProperties": False,
}
QUESTION = [
    {
        "role": "user",
        "content": "Boiler water temperature is 97 °C, its critical threshold is 95 °C. "
        "Rate it and say why in one sentence.",
    }
]
FAST = {"temperature": 0, "seed": 1, "num_predict": 8}


def require_local_model() -> None:
    from mcptool.errors import UsageError
    from mcptool.serving import llama, weights

    try:
        llama.import_runtime()
        if not weights.installed():
            raise UsageError(f"the local model is not installed: {weights.INSTALL_HINT}")
    except UsageError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_local_model()
    command = [sys.executable, "-m", "mcptool", "model", "serve", "--listen", "127.0.0.1:0"]
    command += ["--threads", "2", "--ctx", "2048", "--parallel", "1", "--queue", "0", "--json"]
    log = tmp_path_factory.mktemp("serve") / "stderr.txt"
    with log.open("w") as err:  # a file, not a pipe nobody reads while the tests run
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # after the model loaded (pytest-timeout bounds it)
        if not line:
            process.wait(timeout=30)
            pytest.fail(f"model serve ended: {log.read_text()[-2000:]}")
        started = json.loads(line)
        assert started["model"] == NAME and started["load_s"] > 0
        yield started["url"]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0


def client(url: str) -> OllamaClient:
    return OllamaClient(url, retry=RetryPolicy(attempts=1), timeouts=Timeouts(total=110))


def test_the_official_client_lists_shows_and_sees_it_loaded(url: str) -> None:
    with ollama.Client(host=url) as c:
        listed = c.list().models
        assert [m.model for m in listed] == [NAME]
        assert listed[0].details.quantization_level == "Q4_K_M"
        assert listed[0].size == 491_400_064
        shown = c.show(NAME)
        assert shown.modelinfo["general.architecture"] == "qwen2"
        assert "<|im_start|>" in (shown.template or "")
        running = c.ps().models
        assert [m.model for m in running] == [NAME] and running[0].context_length == 2048
    assert httpx.get(url + "/api/version").json()["version"]


def test_generate_without_streaming_has_ollamas_figures(url: str) -> None:
    with ollama.Client(host=url) as c:
        answer = c.generate(NAME, "Say hello.", options=FAST)
    assert answer.done and answer.done_reason in ("stop", "length")
    assert answer.response.strip()
    assert 0 < answer.eval_count <= 8
    assert answer.prompt_eval_count and answer.prompt_eval_duration and answer.eval_duration
    assert answer.total_duration >= answer.eval_duration


def test_chat_streams_chunk_by_chunk(url: str) -> None:
    with ollama.Client(host=url) as c:
        parts = list(c.chat(NAME, QUESTION, stream=True, options=FAST))
    assert len(parts) > 2 and all(not p.done for p in parts[:-1])
    assert parts[-1].done and parts[-1].done_reason in ("stop", "length")
    assert "".join(p.message.content for p in parts).strip()


READ_VALUES = {
    "type": "function",
    "function": {
        "name": "read_values",
        "description": "Read the current values of a device's points",
        "parameters": {
            "type": "object",
            "properties": {"device": {"type": "string"}},
            "required": ["device"],
        },
    },
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_official_client_gets_the_models_tool_call_in_ollamas_shape(
    url: str, stream: bool
) -> None:
    ask = [{"role": "user", "content": "Read the current values of the device boiler."}]
    options = {"temperature": 0, "seed": 1, "num_predict": 96}
    with ollama.Client(host=url) as c:
        assert "tools" in (c.show(NAME).capabilities or [])
        answer = c.chat(NAME, ask, tools=[READ_VALUES], options=options, stream=stream)
        parts = list(answer) if stream else [answer]
    calls = [call for p in parts for call in p.message.tool_calls or ()]
    # the model writes the call as text (docs/OLLAMA.md); the server sends it as a call
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("read_values", {"device": "boiler"})
    ]
    assert "".join(p.message.content or "" for p in parts) == ""
    assert parts[-1].done and parts[-1].done_reason == "stop"


def test_a_schema_answer_validates_for_both_clients(url: str) -> None:
    options = {"temperature": 0, "seed": 1, "num_predict": 96}
    with ollama.Client(host=url) as c:
        answer = c.chat(NAME, QUESTION, format=SCHEMA, options=options)
    jsonschema.validate(json.loads(answer.message.content), SCHEMA)

    async def ours() -> None:
        async with client(url) as c:
            result = await c.chat(NAME, QUESTION, format=SCHEMA, options=options)
            jsonschema.validate(result.data, SCHEMA)
            assert result.metrics.tokens_per_s and result.metrics.prompt_eval_count

    asyncio.run(ours())


def test_format_json_gives_a_json_object(url: str) -> None:
    with ollama.Client(host=url) as c:
        answer = c.generate(
            NAME,
            "Give a JSON object with a key color.",
            format="json",
            options={"temperature": 0, "seed": 1, "num_predict": 64},
        )
    assert isinstance(json.loads(answer.response), dict)


def test_another_model_name_is_404_naming_the_served_one_and_how_to_serve_another(
    url: str,
) -> None:
    advice = (
        f"mcptool model serve has only {NAME} here; ask for it, or serve another GGUF with "
        "`mcptool model serve --model FILE.gguf --name llama3.2`"
    )
    with ollama.Client(host=url) as c, pytest.raises(ollama.ResponseError) as caught:
        c.generate("llama3.2", "x")
    assert caught.value.status_code == 404
    assert caught.value.error == f"model 'llama3.2' not found: {advice}"

    async def ours() -> None:
        async with client(url) as c:
            with pytest.raises(ModelNotFound) as missing:
                await c.generate("llama3.2", "x")
        assert str(missing.value) == f"model llama3.2 is not on the server at {url}: {advice}"

    asyncio.run(ours())


def test_a_full_queue_is_503_and_a_client_leaving_frees_the_slot(url: str) -> None:
    async def scenario() -> None:
        prompt = "Write the numbers from 1 to 300, each on its own line, with nothing else."
        body = {"model": NAME, "prompt": prompt, "options": {"temperature": 0, "num_predict": 256}}
        async with httpx.AsyncClient(timeout=110) as h:
            async with h.stream("POST", url + "/api/generate", json=body) as running:
                assert running.status_code == 200  # its first token came: it holds the slot
                busy = await h.post(url + "/api/generate", json=body)
                assert (busy.status_code, busy.json()) == (503, {"error": BUSY_MESSAGE})
                async with client(url) as c:
                    with pytest.raises(OllamaBusy):
                        await c.generate(NAME, "x")
            # leaving stops llama.cpp at its next token: the slot frees within moments, not
            # after the 256 tokens asked for (about 10 s here). A preload (empty prompt) is
            # admitted only when the slot is free.
            async with asyncio.timeout(5):
                while (
                    await h.post(url + "/api/generate", json={"model": NAME})
                ).status_code == 503:
                    await asyncio.sleep(0.05)
        async with client(url) as c:
            assert (await c.generate(NAME, "Say hi.", options=FAST)).done_reason

    asyncio.run(scenario())
