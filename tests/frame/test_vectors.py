"""The golden vectors in fixtures/frames/ pin the bytes of MCP v1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import mcptool.frame as frame_api
from mcptool.commands.frame import _describe
from mcptool.frame import Frame, FrameDecoder, FrameError, MessageType, encode_frame, parse_message

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "fixtures" / "frames" / "vectors.json").read_text()
)["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_golden_vector(vector: dict[str, Any]) -> None:
    wire = bytes.fromhex(vector["hex"])
    expected = [
        Frame(MessageType[f["type"]], bytes.fromhex(f["payload_hex"]), f["version"])
        for f in vector.get("frames", [])
    ]
    decoder = FrameDecoder()
    got: list[Frame] = []
    try:
        got = decoder.feed(wire)
        decoder.close()
    except FrameError as error:
        assert "error" in vector, f"unexpected {error!r}"
        assert type(error).__name__ == vector["error"]["class"]
        assert error.offset == vector["error"]["offset"]
        got = got or getattr(error, "frames", [])
    else:
        assert "error" not in vector
    assert got == expected
    if "error" not in vector:
        assert b"".join(encode_frame(f) for f in expected) == wire
    if "payload_error" in vector:
        with pytest.raises(FrameError, match=vector["payload_error"]):
            parse_message(expected[0])
        return
    for f, described in zip(expected, vector.get("messages", []), strict=True):
        message = parse_message(f)
        assert _describe(message) == described
        assert message.encode() == encode_frame(f)


def test_every_message_type_has_a_golden_vector() -> None:
    covered = {f["type"] for v in VECTORS for f in v.get("frames", [])}
    assert covered == set(MessageType.__members__)


def test_every_error_class_has_a_golden_vector() -> None:
    covered = {v["error"]["class"] for v in VECTORS if "error" in v}
    stream_errors = {"BadMagic", "UnsupportedVersion", "UnknownType", "FrameTooLarge"}
    assert stream_errors | {"TruncatedFrame"} <= covered
    assert all(hasattr(frame_api, name) for name in covered)
