"""OllamaClient under every simulator fault: retries, deadlines, backpressure, breaker."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from mcptool.ollama import (
    CircuitBreaker,
    CircuitOpen,
    ModelNotFound,
    OllamaBackpressure,
    OllamaBusy,
    OllamaClient,
    OllamaHTTPError,
    OllamaStreamError,
    OllamaTimeout,
    OllamaUnreachable,
    RetryPolicy,
    Timeouts,
)
from simulators.ollama import BUSY_MESSAGE, OllamaSimulator
from tests.ollama.conftest import FAST_RETRY, poll

GENERATE = "/api/generate"


# -- retries ---------------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_retryable_statuses_are_retried_until_success(
    client: OllamaClient, sim: OllamaSimulator, status: int
) -> None:
    sim.inject("status", status=status, times=2)
    result = await client.generate("llama3.2", "x")
    assert result.text
    assert sim.counters.by_path[GENERATE] == 3
    assert result.metrics.attempts == 3


@pytest.mark.parametrize(("status", "error"), [(400, OllamaHTTPError), (404, ModelNotFound)])
async def test_client_errors_are_never_retried(
    client: OllamaClient, sim: OllamaSimulator, status: int, error: type[Exception]
) -> None:
    sim.inject("status", status=status, message="model 'llama3.2' not found", times=None)
    with pytest.raises(error):
        await client.generate("llama3.2", "x")
    assert sim.counters.by_path[GENERATE] == 1


async def test_busy_server_after_all_retries_is_a_typed_error(
    client: OllamaClient, sim: OllamaSimulator
) -> None:
    sim.inject("status", status=503, message=BUSY_MESSAGE, times=None)
    with pytest.raises(OllamaBusy) as caught:
        await client.generate("llama3.2", "x")
    assert sim.counters.by_path[GENERATE] == FAST_RETRY.attempts
    assert "is busy" in str(caught.value) and "OLLAMA_NUM_PARALLEL" in str(caught.value)


async def test_a_full_server_queue_answers_busy_and_the_client_backs_off() -> None:
    async with OllamaSimulator(parallel=1, queue=0) as sim:
        sim.inject("stall", after_chunks=1, seconds=None)  # holds the only slot
        async with OllamaClient(sim.url, max_in_flight=4, retry=FAST_RETRY) as client:
            holder = asyncio.create_task(client.generate("llama3.2", "a"))
            try:
                await poll(lambda: sim.counters.in_flight == 1)
                with pytest.raises(OllamaBusy):
                    await client.generate("llama3.2", "b")
            finally:
                holder.cancel()
                await asyncio.gather(holder, return_exceptions=True)
        assert sim.counters.rejected_busy == FAST_RETRY.attempts


async def test_a_connection_closed_before_any_answer_is_retried(
    client: OllamaClient, sim: OllamaSimulator
) -> None:
    sim.inject("disconnect", times=1)
    result = await client.chat("llama3.2", [{"role": "user", "content": "x"}])
    assert result.text
    assert sim.counters.by_path["/api/chat"] == 2


async def test_an_unreachable_server_says_to_start_ollama() -> None:
    async with OllamaSimulator() as sim:
        url = sim.url  # a port that was just free: nobody listens there now
    async with OllamaClient(url, retry=FAST_RETRY) as client:
        with pytest.raises(OllamaUnreachable) as caught:
            await client.generate("llama3.2", "x")
    assert str(caught.value) == f"cannot reach Ollama at {url}: is `ollama serve` running?"


async def test_a_dropped_stream_is_retried_when_no_token_reached_the_caller(
    client: OllamaClient, sim: OllamaSimulator
) -> None:
    reference = await client.generate("llama3.2", "x")
    sim.inject("drop", after_chunks=3)
    result = await client.generate("llama3.2", "x")
    assert result.text == reference.text
    assert sim.counters.by_path[GENERATE] == 3


async def test_a_dropped_stream_the_caller_was_reading_is_a_stream_error(
    client: OllamaClient, sim: OllamaSimulator
) -> None:
    sim.inject("drop", after_chunks=3)
    texts: list[str] = []
    with pytest.raises(OllamaStreamError) as caught:
        async with client.stream_generate("llama3.2", "x") as stream:
            async for chunk in stream:
                texts.append(chunk.text)
    assert caught.value.chunks == 3 and caught.value.partial == "".join(texts)
    assert "dropped mid-stream after 3 chunks" in str(caught.value)
    assert sim.counters.by_path[GENERATE] == 1


async def test_an_error_line_mid_stream_is_a_stream_error_with_the_servers_words(
    client: OllamaClient, sim: OllamaSimulator
) -> None:
    sim.inject("error_line", after_chunks=4, message="llama runner process has terminated")
    with pytest.raises(OllamaStreamError) as caught:
        await client.generate("llama3.2", "x")
    assert str(caught.value) == (
        "model llama3.2 failed mid-stream after 4 chunks: llama runner process has terminated"
    )
    assert sim.counters.by_path[GENERATE] == 1


# -- deadlines -------------------------------------------------------------------------
async def test_a_stall_between_chunks_hits_the_read_deadline_and_stops_the_server(
    sim: OllamaSimulator,
) -> None:
    sim.inject("stall", after_chunks=2, seconds=None)
    timeouts = Timeouts(read=0.2, load=10, total=10)
    async with OllamaClient(sim.url, timeouts=timeouts, retry=FAST_RETRY) as client:
        with pytest.raises(OllamaTimeout) as caught:
            await client.generate("llama3.2", "x")
    assert caught.value.deadline == "read"
    assert "read deadline of 0.2s" in str(caught.value)
    assert sim.counters.by_path[GENERATE] == 1  # a read timeout is not retried
    await poll(lambda: sim.counters.cancelled == 1)


async def test_silence_before_the_first_chunk_hits_the_load_deadline(sim: OllamaSimulator) -> None:
    sim.inject("stall", after_chunks=0, seconds=None)
    timeouts = Timeouts(read=10, load=0.2, total=10)
    async with OllamaClient(sim.url, timeouts=timeouts, retry=FAST_RETRY) as client:
        with pytest.raises(OllamaTimeout) as caught:
            await client.chat("llama3.2", [{"role": "user", "content": "x"}])
    assert caught.value.deadline == "load"
    assert sim.counters.by_path["/api/chat"] == 1
    await poll(lambda: sim.counters.cancelled == 1)


async def test_a_cold_load_gets_the_load_allowance_not_the_read_deadline() -> None:
    async with OllamaSimulator(load_delay=0.3) as sim:
        timeouts = Timeouts(read=0.05, load=10, total=10)
        async with OllamaClient(sim.url, timeouts=timeouts) as client:
            result = await client.generate("llama3.2", "x")
    # the load is reported (the simulator sleeps 0.3 s; allow for clock granularity)
    assert result.metrics.load_s > 0.2
    assert result.metrics.first_chunk_s > 0.2
    assert sim.counters.loads == 1


async def test_the_total_deadline_bounds_the_whole_call(sim: OllamaSimulator) -> None:
    sim.inject("stall", after_chunks=1, seconds=None)
    timeouts = Timeouts(read=30, load=30, total=0.3)
    async with OllamaClient(sim.url, timeouts=timeouts) as client:
        with pytest.raises(OllamaTimeout) as caught:
            await client.generate("llama3.2", "x")
    assert caught.value.deadline == "total"


async def test_a_client_leaving_during_a_cold_load_aborts_the_load() -> None:
    async with OllamaSimulator(load_delay=30) as sim:
        timeouts = Timeouts(load=0.2, total=10)
        async with OllamaClient(sim.url, timeouts=timeouts) as client:
            with pytest.raises(OllamaTimeout):
                await client.generate("llama3.2", "x")
        await poll(lambda: sim.counters.loads_aborted == 1)
        assert sim.counters.loads == 0


# -- cancellation ----------------------------------------------------------------------
async def test_closing_a_stream_early_stops_the_generation_at_the_server() -> None:
    async with OllamaSimulator(token_delay=0.05) as sim, OllamaClient(sim.url) as client:
        async with client.stream_generate("llama3.2", "x") as stream:
            async for _chunk in stream:
                break
        await poll(lambda: sim.counters.cancelled == 1)
        assert sim.counters.completed == 0
        assert client.admission.in_flight == 0


async def test_cancelling_the_calling_task_stops_the_generation_at_the_server() -> None:
    async with OllamaSimulator(token_delay=0.05) as sim, OllamaClient(sim.url) as client:
        task = asyncio.create_task(client.generate("llama3.2", "x"))
        await poll(lambda: sim.counters.in_flight == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await poll(lambda: sim.counters.cancelled == 1)
        assert client.admission.in_flight == 0


# -- in-flight bound and backpressure --------------------------------------------------
async def test_requests_in_flight_never_exceed_the_bound() -> None:
    sim = OllamaSimulator(parallel=8, token_delay=0.001)
    async with sim, OllamaClient(sim.url, max_in_flight=2, max_waiting=16) as client:
        results = await asyncio.gather(*(client.generate("llama3.2", f"p{i}") for i in range(10)))
    assert sim.counters.max_in_flight == 2
    assert sim.counters.completed == 10
    assert any(r.metrics.queue_wait_s > 0 for r in results)


async def test_a_full_wait_queue_raises_backpressure_without_calling_the_server(
    sim: OllamaSimulator,
) -> None:
    sim.inject("stall", after_chunks=1, seconds=None, times=None)
    async with OllamaClient(sim.url, max_in_flight=1, max_waiting=1) as client:
        running = asyncio.create_task(client.generate("llama3.2", "a"))
        waiting = asyncio.create_task(client.generate("llama3.2", "b"))
        try:
            # the first request must have reached the server, or the count below races it
            await poll(
                lambda: client.admission.waiting == 1 and sim.counters.by_path[GENERATE] == 1
            )
            with pytest.raises(OllamaBackpressure) as caught:
                await client.generate("llama3.2", "c")
        finally:
            for task in (running, waiting):
                task.cancel()
            await asyncio.gather(running, waiting, return_exceptions=True)
    assert sim.counters.by_path[GENERATE] == 1
    assert "1 in flight and 1 waiting" in str(caught.value)


# -- circuit breaker -------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_breaker_opens_after_failures_and_probes_again_later(
    sim: OllamaSimulator,
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30, clock=clock)
    no_retry = RetryPolicy(attempts=1)
    async with OllamaClient(sim.url, breaker=breaker, retry=no_retry) as client:
        sim.inject("status", status=500, times=None)
        for _ in range(2):
            with pytest.raises(OllamaHTTPError):
                await client.generate("llama3.2", "x")
        with pytest.raises(CircuitOpen) as caught:
            await client.generate("llama3.2", "x")
        assert sim.counters.by_path[GENERATE] == 2  # refused without calling
        assert "failed 2 times in a row" in str(caught.value)

        clock.now = 31.0  # half-open: one probe goes out; it fails, so open again
        with pytest.raises(OllamaHTTPError):
            await client.generate("llama3.2", "x")
        with pytest.raises(CircuitOpen):
            await client.list_models()

        clock.now = 62.0
        sim.clear_faults()
        assert (await client.generate("llama3.2", "x")).text  # the probe succeeds: closed
        assert (await client.generate("llama3.2", "y")).text
    assert sim.counters.by_path[GENERATE] == 5


async def test_caller_errors_do_not_open_the_breaker(
    client: OllamaClient, sim: OllamaSimulator
) -> None:
    for _ in range(10):
        with pytest.raises(ModelNotFound):
            await client.generate("nope", "x")
    assert (await client.generate("llama3.2", "x")).text


async def test_the_read_deadline_is_per_chunk_not_for_the_whole_stream() -> None:
    # 10 tokens 0.05 s apart: the stream lasts longer than the read deadline, no gap does.
    sim = OllamaSimulator(token_delay=0.05, tokens=(10, 10))
    async with sim, OllamaClient(sim.url, timeouts=Timeouts(read=0.2, load=5, total=10)) as client:
        result = await client.generate("llama3.2", "x")
    assert result.metrics.eval_count == 10
    assert result.metrics.eval_s > 0.2


async def test_a_connect_that_gets_no_answer_hits_the_connect_deadline() -> None:
    # A listener whose accept queue is full drops new SYNs: the connect never completes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            timeouts = Timeouts(connect=0.2, total=10)
            url = f"http://127.0.0.1:{port}"
            async with OllamaClient(url, timeouts=timeouts, retry=FAST_RETRY) as client:
                with pytest.raises(OllamaTimeout) as caught:
                    await client.version()
        finally:
            for filler in fillers:
                filler.close()
    assert caught.value.deadline == "connect"
    assert "connect deadline of 0.2s passed" in str(caught.value)


async def test_the_in_flight_bound_follows_ollama_num_parallel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "4")
    async with OllamaClient("127.0.0.1") as client:
        assert client.admission.max_in_flight == 4
    monkeypatch.delenv("OLLAMA_NUM_PARALLEL")
    async with OllamaClient("127.0.0.1") as client:
        assert client.admission.max_in_flight == 1
