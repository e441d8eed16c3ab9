"""A GGUF header read for what Ollama's tags and show report; anything else refused."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from mcptool.errors import UsageError
from mcptool.serving.gguf import read_gguf


def string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf(pairs: list[tuple[str, int, bytes]]) -> bytes:
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(pairs))
    for key, kind, value in pairs:
        out += string(key) + struct.pack("<I", kind) + value
    return out


HEADER = gguf(
    [
        ("general.architecture", 8, string("qwen2")),
        ("general.size_label", 8, string("0.5B")),
        ("general.file_type", 4, struct.pack("<I", 15)),
        ("qwen2.context_length", 4, struct.pack("<I", 32768)),
        ("qwen2.rope.freq_base", 6, struct.pack("<f", 2.0)),
        # the tokenizer's arrays: skipped, strings one by one, numbers in one seek
        ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + string("a") + string("b")),
        ("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, 3) + b"\0" * 12),
        ("tokenizer.ggml.add_bos_token", 7, b"\0"),
    ]
)


def test_the_header_gives_family_size_quantization_and_context(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(HEADER + b"tensor data follows")
    info = read_gguf(path)
    assert (info.architecture, info.parameter_size, info.quantization) == (
        "qwen2",
        "0.5B",
        "Q4_K_M",
    )
    assert info.context_length == 32768 and info.size == path.stat().st_size
    assert info.metadata["tokenizer.ggml.add_bos_token"] is False
    assert "tokenizer.ggml.tokens" not in info.model_info()
    assert info.model_info()["qwen2.rope.freq_base"] == 2.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04 a zip", "is not a GGUF model file"),
        (HEADER[:-5], "damaged GGUF file"),
        (b"GGUF" + struct.pack("<IQQ", 1, 0, 0), "GGUF version 1"),
    ],
)
def test_anything_else_is_one_line_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        read_gguf(path)


def test_a_missing_file_or_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_gguf(tmp_path / "nope.gguf")
    with pytest.raises(UsageError, match="is a directory"):
        read_gguf(tmp_path)
