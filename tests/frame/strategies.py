"""Hypothesis strategies for MCP frames and streams."""

from __future__ import annotations

import itertools

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
