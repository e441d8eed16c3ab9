"""The generate and chat parameters are defined once; the body and the accepted names follow."""

from __future__ import annotations

import inspect
import typing

import pytest

from mcptool.ollama import ChatParams, GenerateParams, OllamaClient
from mcptool.ollama.request import CHAT_KEYS, GENERATE_KEYS, chat_body, generate_body


def test_the_accepted_names_are_the_typed_dicts_keys() -> None:
    assert set(GENERATE_KEYS) == set(typing.get_type_hints(GenerateParams))
    assert set(CHAT_KEYS) == set(typing.get_type_hints(ChatParams))
    assert {"format", "options", "keep_alive", "think", "extra", "stream"} <= set(CHAT_KEYS)
    assert {"system", "images", "raw", "context"} <= set(GENERATE_KEYS)


@pytest.mark.parametrize("method", ["generate", "stream_generate", "chat", "stream_chat"])
def test_every_entry_point_takes_its_parameters_from_the_typed_dict(method: str) -> None:
    signature = inspect.signature(getattr(OllamaClient, method))
    params = signature.parameters["params"]
    assert params.kind is inspect.Parameter.VAR_KEYWORD
    expected = GenerateParams if "generate" in method else ChatParams
    assert typing.get_args(typing.get_type_hints(getattr(OllamaClient, method))["params"]) == (
        expected,
    )


def test_none_and_empty_collections_are_not_sent() -> None:
    body = generate_body(
        "m",
        "p",
        {"format": "", "options": {}, "images": [], "context": (), "system": None, "raw": None},
    )
    assert body == {"model": "m", "prompt": "p"}


def test_falsy_scalars_are_sent_because_they_mean_something() -> None:
    # keep_alive 0 unloads at once, think False turns thinking off, an empty system
    # prompt replaces the model's own
    body = generate_body("m", "p", {"keep_alive": 0, "think": False, "raw": False, "system": ""})
    assert body == {
        "model": "m",
        "prompt": "p",
        "keep_alive": 0,
        "think": False,
        "raw": False,
        "system": "",
    }


def test_stream_is_sent_only_when_off_as_streaming_is_ollamas_default() -> None:
    assert "stream" not in generate_body("m", "p", {"stream": True})
    assert generate_body("m", "p", {"stream": False})["stream"] is False


def test_collections_become_plain_json_and_extra_is_merged_last() -> None:
    schema = {"type": "object"}
    body = chat_body(
        "m",
        [{"role": "user", "content": "hi"}],
        {
            "format": schema,
            "options": {"seed": 1},
            "tools": ({"type": "function"},),
            "extra": {"options": {"seed": 2}, "suffix": "x"},
        },
    )
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "format": {"type": "object"},
        "options": {"seed": 2},
        "tools": [{"type": "function"}],
        "suffix": "x",
    }
    assert body["format"] is not schema


@pytest.mark.parametrize(
    ("build", "caller"),
    [
        (lambda: generate_body("m", "p", {"tools": []}), "generate"),  # type: ignore[typeddict-unknown-key]
        (lambda: chat_body("m", [], {"system": "s"}), "chat"),  # type: ignore[typeddict-unknown-key]
    ],
)
def test_a_parameter_of_the_other_endpoint_is_refused(build: typing.Any, caller: str) -> None:
    with pytest.raises(TypeError, match=rf"{caller}\(\) got unexpected keyword arguments"):
        build()


async def test_the_streaming_variants_refuse_unknown_names_before_any_request() -> None:
    async with OllamaClient("127.0.0.1:9") as client:
        with pytest.raises(TypeError, match=r"stream_generate\(\).*'temperature'"):
            client.stream_generate("m", "p", temperature=0.1)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match=r"stream_chat\(\).*'system'"):
            client.stream_chat("m", [], system="s")  # type: ignore[call-arg]
