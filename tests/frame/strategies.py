"""Hypothesis strategies for MCP frames and streams."""

from __future__ import annotations

import itertools
import json

from hypothesis import strategies as st

from mcptool.frame import Frame, MessageType

message_types = st.sampled_from(list(MessageType))


def frames(max_payload: int = 300) -> st.SearchStrategy[Frame]:
    return st.builds(
        Frame, type=message_types, payload=st.binary(max_size=max_payload), version=st.just(1)
    )


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary points (possibly into empty pieces)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@st.composite
def hostile_json(draw: st.DrawFn) -> bytes:
    """Bytes that are JSON, almost JSON, or built to break a JSON parser: nesting far
    beyond any limit (closed or not, inside and outside strings), numbers of thousands of
    digits, NaN and Infinity, invalid UTF-8, and envelopes with any of those inside."""
    depth = draw(st.integers(0, 20_000))
    opener = draw(st.sampled_from([b"[", b'{"a":', b'[{"k":[', b'"', b"\\"]))
    closer = draw(st.sampled_from([b"", b"]", b"}", b"]}"]))
    digits = draw(st.integers(1, 12_000))
    number = draw(
        st.sampled_from(
            [
                b"9" * digits,
                b"-" + b"1" * digits,
                b"1." + b"0" * digits,
                b"1e" + b"9" * min(digits, 400),
                b"NaN",
                b"-Infinity",
            ]
        )
    )
    pieces = [
        opener * depth + closer * draw(st.integers(0, depth)),
        number,
        json.dumps(draw(json_values)).encode(),
        draw(st.binary(max_size=20)),
        b'{"header":{"traceId":"t","service":"s","timestamp":',
        b'},"payload":{"action":"a","data":',
        b'{"code":200,"message":"OK","timestamp":',
        b'"traceId":',
        b"\xff\xfe\xc3(",
        b"}",
        b"]",
        b",",
    ]
    chosen = draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=6))
    return b"".join(chosen)[:65535]
