"""Cutting a poll's message by readings to fit a size limit."""

from __future__ import annotations

import json

import pytest

from mcptool.gateway.sinks.split import Unsplittable, split
from mcptool.gateway.spool import Kind, Record


def poll(sizes: list[int], first: int = 10) -> Record:
    readings = [
        {"device": "d", "point": f"p{i}", "seq": first + i, "value": "x" * size}
        for i, size in enumerate(sizes)
    ]
    payload = json.dumps({"node": "n", "device": "d", "seq": first, "readings": readings})
    return Record(1, "d", first, len(sizes), 0.0, payload.encode())


def test_a_message_that_fits_is_sent_as_it_is() -> None:
    record = poll([10, 10])
    [piece] = split(record, len(record.payload)).pieces
    assert (piece.body, piece.seq_first, piece.seq_last) == (record.payload, 10, 11)


def test_a_message_over_the_limit_is_cut_into_messages_of_fewer_readings_that_fit() -> None:
    record = poll([20] * 50)
    result = split(record, 600)
    assert len(result.pieces) > 1 and result.oversized == []
    assert all(len(piece.body) <= 600 for piece in result.pieces)
    messages = [json.loads(piece.body) for piece in result.pieces]
    original = json.loads(record.payload)
    assert [r for m in messages for r in m["readings"]] == original["readings"]
    for piece, message in zip(result.pieces, messages, strict=True):
        assert message["seq"] == piece.seq_first == message["readings"][0]["seq"]
        assert piece.seq_last == message["readings"][-1]["seq"]
        assert piece.count == len(message["readings"])


def test_readings_that_alone_are_over_the_limit_are_left_out_with_their_size() -> None:
    result = split(poll([10, 900, 900, 10, 900]), 500)
    kept = [r["seq"] for p in result.pieces for r in json.loads(p.body)["readings"]]
    assert kept == [10, 13]
    assert [(first, last) for first, last, _ in result.oversized] == [(11, 12), (14, 14)]
    assert all(size > 900 for _, _, size in result.oversized)


@pytest.mark.parametrize(
    ("kind", "payload", "why"),
    [
        (Kind.TELEMETRY, b"\xff" * 100, "is not JSON"),
        (Kind.TELEMETRY, json.dumps({"device": "d", "x": "y" * 100}).encode(), "no readings"),
        (Kind.FINDING, json.dumps({"type": "finding", "summary": "x" * 100}).encode(), "finding"),
        # by its kind, not by what its payload looks like
        (Kind.STATUS, poll([100]).payload, "is a status, which has no readings"),
    ],
)
def test_a_record_that_is_not_a_poll_cannot_be_cut(kind: Kind, payload: bytes, why: str) -> None:
    with pytest.raises(Unsplittable, match=why) as raised:
        split(Record(1, "d", 1, 1, 0.0, payload, kind), 50)
    assert raised.value.size == len(payload)
