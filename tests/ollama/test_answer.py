"""Chunks of a generate or chat answer put together into what the caller gets."""

from __future__ import annotations

from mcptool.ollama.answer import Answer

FINAL = {
    "model": "llama3.2",
    "created_at": "2026-11-30T10:00:00Z",
    "done": True,
    "done_reason": "stop",
    "eval_count": 3,
    "eval_duration": 1_000_000_000,
}


def test_generate_chunks_make_the_text_thinking_and_result() -> None:
    answer = Answer("llama3.2", chat=False)
    for data in (
        {"response": "", "thinking": "hmm"},
        {"response": "Hel"},
        {"response": "lo", "context": [1]},
        {**FINAL, "response": "", "context": [1, 2]},
    ):
        answer.add(data)
    assert (answer.chunks, answer.partial) == (4, "Hello")
    chunk = answer.chunk({"response": "lo", "thinking": "x", "done": False})
    assert (chunk.text, chunk.done, chunk.thinking) == ("lo", False, "x")
    result = answer.result(
        {**FINAL, "context": [1, 2]}, queue_wait_s=0.5, first_chunk_s=0.25, attempts=2
    )
    assert (result.text, result.thinking, result.done_reason) == ("Hello", "hmm", "stop")
    assert (result.model, result.context, result.created_at) == (
        "llama3.2",
        [1, 2],
        FINAL["created_at"],
    )
    assert (result.metrics.queue_wait_s, result.metrics.first_chunk_s) == (0.5, 0.25)
    assert result.metrics.attempts == 2
    assert result.metrics.eval_count == 3


def test_chat_chunks_keep_their_text_in_the_message_and_collect_tool_calls() -> None:
    call = {"function": {"name": "read_point", "arguments": {"point": 3}}}
    answer = Answer("llama3.2", chat=True)
    answer.add({"message": {"role": "assistant", "content": "", "tool_calls": [call]}})
    answer.add({"message": {"role": "assistant", "content": "ok", "thinking": "t"}})
    answer.add({**FINAL, "message": {"role": "assistant", "content": ""}})
    chunk = answer.chunk({"message": {"content": "ok", "thinking": "t"}, "done": True})
    assert (chunk.text, chunk.done, chunk.thinking) == ("ok", True, "t")
    result = answer.result(FINAL, queue_wait_s=0.0, first_chunk_s=0.0, attempts=1)
    assert (result.text, result.thinking, result.tool_calls) == ("ok", "t", [call])


def test_a_final_chunk_without_a_model_keeps_the_requested_one() -> None:
    answer = Answer("qwen3", chat=False)
    answer.add({"done": True})
    assert (
        answer.result({"done": True}, queue_wait_s=0, first_chunk_s=0, attempts=1).model == "qwen3"
    )
