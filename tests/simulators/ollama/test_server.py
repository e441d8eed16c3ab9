"""The simulator's wire format, scheduling and faults, seen with a plain HTTP client."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest

from simulators.ollama import OllamaSimulator

HAS = (
    "the Ollama simulator has llama3.2:latest, nomic-embed-text:latest; ask for one of them, "
    "or start it with that model: `mcptool simulate ollama --model "
)
USER = {"role": "user", "content": "How is pump 3?"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


async def lines_of(client: httpx.AsyncClient, path: str, body: dict) -> list[dict]:
    async with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers["transfer-encoding"] == "chunked"
        raw = await response.aread()
    assert raw.endswith(b"\n") and b"\n\n" not in raw  # NDJSON, no blank lines
    return [json.loads(line) for line in raw.splitlines()]


async def test_root_says_ollama_is_running(sim: OllamaSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        response = await client.get("/")
        head = await client.head("/")
    assert response.text == "Ollama is running"
    assert head.status_code == 200 and head.content == b""


async def test_stream_chunks_and_the_final_chunk_follow_ollamas_format(
    sim: OllamaSimulator,
) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        parts = await lines_of(client, "/api/generate", {"model": "llama3.2", "prompt": "hi"})
    *chunks, final = parts
    for chunk in chunks:
        assert list(chunk) == ["model", "created_at", "response", "done"]
        assert chunk["done"] is False and RFC3339.match(chunk["created_at"])
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["response"] == "" and final["context"]
    for key in ("total_duration", "prompt_eval_count", "prompt_eval_duration", "eval_duration"):
        assert isinstance(final[key], int) and final[key] > 0
    assert final["eval_count"] == len(chunks)


async def test_zero_metrics_are_omitted(sim: OllamaSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        cold = (await lines_of(client, "/api/generate", {"model": "llama3.2", "prompt": "a"}))[-1]
        warm = (await lines_of(client, "/api/generate", {"model": "llama3.2", "prompt": "b"}))[-1]
    assert "load_duration" in cold
    assert "load_duration" not in warm


async def test_a_cold_load_is_reported_and_happens_once() -> None:
    async with OllamaSimulator(load_delay=0.2) as sim, httpx.AsyncClient(base_url=sim.url) as c:
        body = {"model": "llama3.2", "prompt": "hi", "stream": False}
        first, second = await asyncio.gather(
            c.post("/api/generate", json=body), c.post("/api/generate", json=body)
        )
    assert sim.counters.loads == 1
    assert max(first.json()["load_duration"], second.json()["load_duration"]) > 100_000_000


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/generate", b"{not json", 400, None),
        ("/api/generate", b"", 400, "missing request body"),
        ("/api/chat", b'{"messages": []}', 400, "model is required"),
        ("/api/show", b'{"model": "gemma3"}', 404, f"model 'gemma3' not found: {HAS}gemma3`"),
        (
            "/api/embed",
            b'{"model": "nope", "input": "x"}',
            404,
            f"model 'nope' not found: {HAS}nope`",
        ),
        ("/api/generate", b'{"model": "llama3.2", "prompt": "x", "format": 3}', 400, None),
    ],
)
async def test_errors_have_ollamas_statuses_and_bodies(
    sim: OllamaSimulator, path: str, body: bytes, status: int, error: str | None
) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        response = await client.post(path, content=body)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    if error is not None:
        assert response.json()["error"] == error


async def test_unknown_paths_are_gins_404(sim: OllamaSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        response = await client.get("/api/nothing")
    assert response.status_code == 404 and response.text == "404 page not found"


async def test_answers_depend_on_the_seed_and_nothing_else() -> None:
    body = {"model": "llama3.2", "prompt": "hi", "stream": False}
    answers = []
    for seed in (1, 1, 2):
        async with OllamaSimulator(seed=seed) as sim, httpx.AsyncClient(base_url=sim.url) as c:
            answers.append((await c.post("/api/generate", json=body)).json()["response"])
    assert answers[0] == answers[1] != answers[2]


async def test_parallelism_limits_requests_running_at_once() -> None:
    sim = OllamaSimulator(parallel=2, token_delay=0.002)
    async with sim, httpx.AsyncClient(base_url=sim.url) as client:
        body = {"model": "llama3.2", "prompt": "hi", "stream": False}
        responses = await asyncio.gather(
            *(client.post("/api/generate", json=body) for _ in range(6))
        )
    assert all(r.status_code == 200 for r in responses)
    assert sim.counters.max_in_flight == 2
    assert sim.counters.max_waiting >= 3


async def test_many_concurrent_keep_alive_streams_all_complete() -> None:
    # Neither of httpx's 5 s defaults, or the test measures the machine: the second hundred
    # requests wait for a pooled connection while httpcore scans its 100 connections for
    # every request, on this same event loop (seconds of CPU); on a busy machine the pool
    # timeout then failed the test, and a connection handed to a request whose task had
    # not run for 5 s counted as expired, was closed and replaced (a 101st connection).
    # pytest's timeout still bounds a hang.
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=None)
    sim = OllamaSimulator(parallel=100)
    async with sim, httpx.AsyncClient(base_url=sim.url, limits=limits, timeout=None) as client:
        chats = [
            {"model": "llama3.2", "messages": [{"role": "user", "content": str(i)}]}
            for i in range(200)
        ]
        results = await asyncio.gather(*(lines_of(client, "/api/chat", c) for c in chats))
    assert all(r[-1]["done"] for r in results)
    assert sim.counters.completed == 200
    assert sim.connections_accepted <= 100


async def test_connection_close_is_honoured(sim: OllamaSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url, headers={"connection": "close"}) as client:
        for _ in range(3):
            assert (await client.get("/api/version")).json() == {"version": "0.12.6"}
    assert sim.connections_accepted == 3


async def test_a_dropped_stream_ends_without_the_chunked_terminator(sim: OllamaSimulator) -> None:
    sim.inject("drop", after_chunks=2)
    async with httpx.AsyncClient(base_url=sim.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await lines_of(client, "/api/generate", {"model": "llama3.2", "prompt": "x"})


async def test_stream_false_with_an_error_mid_generation_is_a_500(sim: OllamaSimulator) -> None:
    sim.inject("error_line", after_chunks=2, message="out of memory")
    async with httpx.AsyncClient(base_url=sim.url) as client:
        response = await client.post(
            "/api/generate", json={"model": "llama3.2", "prompt": "x", "stream": False}
        )
    assert response.status_code == 500 and response.json() == {"error": "out of memory"}


async def test_faults_can_target_one_model_and_fire_a_set_number_of_times(
    sim: OllamaSimulator,
) -> None:
    sim.add_model("qwen3")
    fault = sim.inject("status", status=500, model="qwen3:latest", times=2)
    async with httpx.AsyncClient(base_url=sim.url) as client:
        body = {"prompt": "x", "stream": False}
        statuses = [
            (await client.post("/api/generate", json={"model": m, **body})).status_code
            for m in ("llama3.2", "qwen3", "qwen3", "qwen3")
        ]
    assert statuses == [200, 500, 500, 200]
    assert fault.fired == 2


async def test_keep_alive_durations_set_the_expiry_shown_by_ps(sim: OllamaSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        await client.post("/api/generate", json={"model": "llama3.2", "keep_alive": "1h30m"})
        running = (await client.get("/api/ps")).json()["models"]
        bad = await client.post("/api/generate", json={"model": "llama3.2", "keep_alive": "soon"})
    assert RFC3339.match(running[0]["expires_at"])
    assert bad.status_code == 400 and "invalid duration" in bad.json()["error"]


async def test_an_answer_hook_scripts_replies_and_none_keeps_the_default() -> None:
    def answer(endpoint: str, body: dict) -> str | None:
        return "Pump 3 is fine." if "pump" in body.get("prompt", "") else None

    async with OllamaSimulator(answer=answer) as sim, httpx.AsyncClient(base_url=sim.url) as c:
        scripted = await lines_of(c, "/api/generate", {"model": "llama3.2", "prompt": "pump?"})
        default = await lines_of(c, "/api/generate", {"model": "llama3.2", "prompt": "other"})
    assert "".join(p["response"] for p in scripted) == "Pump 3 is fine."
    assert "".join(p["response"] for p in default) != "Pump 3 is fine."


async def test_a_failing_answer_hook_is_a_500_not_a_hang(caplog: pytest.LogCaptureFixture) -> None:
    def answer(endpoint: str, body: dict) -> str | None:
        raise RuntimeError("bug in the test's hook")

    async with OllamaSimulator(answer=answer) as sim, httpx.AsyncClient(base_url=sim.url) as c:
        response = await c.post(
            "/api/generate", json={"model": "llama3.2", "prompt": "x", "stream": False}
        )
    assert response.status_code == 500
    assert "bug in the test's hook" in caplog.text


async def test_an_error_before_the_first_chunk_is_a_status_as_ollama_sends_it(
    sim: OllamaSimulator,
) -> None:
    sim.inject("error_line", after_chunks=0, message="llama runner process has terminated")
    async with httpx.AsyncClient(base_url=sim.url) as client:
        response = await client.post("/api/chat", json={"model": "llama3.2", "messages": [USER]})
    assert response.status_code == 500  # nothing was sent yet: no 200 with an error line
    assert response.json() == {"error": "llama runner process has terminated"}


async def test_a_model_past_its_keep_alive_is_unloaded_and_loads_again(
    sim: OllamaSimulator,
) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        body = {"model": "llama3.2", "prompt": "x", "stream": False, "keep_alive": "20ms"}
        assert "load_duration" in (await client.post("/api/generate", json=body)).json()
        async with asyncio.timeout(5):
            while sim.counters.unloads == 0:
                await asyncio.sleep(0.01)
        assert (await client.get("/api/ps")).json() == {"models": []}
        await client.post("/api/generate", json=body)
    assert sim.counters.loads == 2
