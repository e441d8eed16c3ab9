"""What an Ollama request becomes for llama.cpp, and how its chunks are read back.

Pure translation, no model: the tests with llama.cpp running are test_model_serve.py.
"""

from __future__ import annotations

from mcptool.serving.generator import Prompt
from mcptool.serving.llama import chunk_text, request_body

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
