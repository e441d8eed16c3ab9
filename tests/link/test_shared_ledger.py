"""A hub whose ledger is a shared store (``commit``, ``resume_point``) and nodes that fail
over between hubs along a list of URLs: over loopback, with the store faked in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from mcptool.link import Backoff, LinkClient, LinkError, LinkServer

KEY = b"0123456789abcdef0123456789abcdef"
KEYS = {"node-1": KEY}
FAST = Backoff(initial=0.02, multiplier=1.5, jitter=0.2, maximum=0.1)


class Store:
    """What several hubs share: every committed frame, in order."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, int, bytes]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self.failures = 0

    async def commit(self, node: str, frames: Sequence[tuple[int, bytes]]) -> None:
        self.entered.set()
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store unavailable")
        self.frames.extend((node, seq, body) for seq, body in frames)

    async def resume_point(self, node: str) -> int:
        return max((seq for n, seq, _ in self.frames if n == node), default=0)


def hub(store: Store) -> LinkServer:
    return LinkServer("127.0.0.1", 0, KEYS, commit=store.commit, resume_point=store.resume_point)


async def test_the_ack_waits_for_the_commit() -> None:
    store = Store()
    async with hub(store) as server, LinkClient(server.url, "node-1", KEY) as link:
        store.gate.clear()
        ack = await link.submit(b"one")
        await asyncio.wait_for(store.entered.wait(), 5)  # the hub has the frame
        assert not ack.done() and store.frames == []
        with pytest.raises(TimeoutError):  # nothing reaches the node while the commit runs
            await asyncio.wait_for(asyncio.shield(ack), 0.2)
        store.gate.set()
        await asyncio.wait_for(ack, 5)
        assert store.frames == [("node-1", 1, b"one")]


async def test_a_failed_commit_acknowledges_nothing_and_the_frame_comes_again() -> None:
    store = Store()
    store.failures = 1
    async with hub(store) as server:
        link = LinkClient(server.url, "node-1", KEY, backoff=FAST)
        await link.start(5)
        await asyncio.wait_for(link.send(b"kept"), 10)
        await link.close()
    assert store.frames == [("node-1", 1, b"kept")]


async def test_a_node_fails_over_to_the_next_hub_and_resumes_from_the_shared_store() -> None:
    store = Store()
    first, second = hub(store), hub(store)
    await first.start()
    await second.start()
    link = LinkClient([first.url, second.url], "node-1", KEY, backoff=FAST)
    try:
        await link.start(5)
        for i in range(5):
            await link.send(b"%d" % i)
        await first.stop(abort=True)
        await asyncio.wait_for(link.send(b"after"), 10)
        assert str(link.url) == second.url
        assert link.session is not None and link.session.resume_seq == 5
    finally:
        await link.close()
        await second.stop()
    assert [seq for _, seq, _ in store.frames] == [1, 2, 3, 4, 5, 6]


async def test_a_hub_url_list_must_be_of_one_scheme_and_not_empty() -> None:
    with pytest.raises(LinkError, match="mix"):
        LinkClient(["mcp://127.0.0.1:1", "mcps://127.0.0.1:2"], "node-1", KEY)
    with pytest.raises(LinkError, match="no hub URL"):
        LinkClient([], "node-1", KEY)
