"""Hubs as stateless ingest: a frame is acknowledged only once JetStream stored it, and a
node that fails over to another hub leaves every frame stored exactly once."""

from __future__ import annotations

import asyncio
import json

import pytest

from mcptool.fleet import FleetIngest
from mcptool.fleet.subjects import WINDOWS_STREAM
from mcptool.link import Backoff, LinkClient, LinkServer
from simulators.nats import NatsCluster
from tests.fleet.conftest import KEYS
from tests.fleet.stream_reader import messages, poll, stored_readings

FAST = Backoff(initial=0.05, multiplier=1.5, jitter=0.2, maximum=0.3)
BASE_MS = 1_700_000_000_000


def fleet_hub(ingest: FleetIngest) -> LinkServer:
    return LinkServer(
        "127.0.0.1",
        0,
        KEYS,
        commit=ingest.commit,
        resume_point=ingest.resume_point,
        on_event=ingest.event,
    )


async def test_every_frame_is_stored_before_its_ack_and_windows_close(
    nats_cluster: NatsCluster,
) -> None:
    async with (
        FleetIngest(nats_cluster.urls, window_s=5) as ingest,
        fleet_hub(ingest) as hub,
        LinkClient(hub.url, "node-1", KEYS["node-1"]) as link,
    ):
        for i in range(12):
            await link.send(poll("boiler", BASE_MS + i * 1000, 20 + i))
            # send() returned: the hub acknowledged, so JetStream holds the frame
            assert (await stored_readings(ingest._js))[("node-1", i + 1)] == 1
        await link.send(b"not a poll")
        windows = [json.loads(m.data) for m in await messages(ingest._js, WINDOWS_STREAM)]
    # 12 polls one second apart from a multiple of 5 s: windows 0-4 s and 5-9 s closed
    assert [(w["device"], w["last"] - w["first"]) for w in windows] == [
        ("boiler", 4),
        ("boiler", 4),
    ]


async def test_a_node_failing_over_between_hubs_is_stored_exactly_once(
    nats_cluster: NatsCluster,
) -> None:
    async with (
        FleetIngest(nats_cluster.urls, window_s=5) as first,
        FleetIngest(nats_cluster.urls, window_s=5) as second,
    ):
        hub_a, hub_b = fleet_hub(first), fleet_hub(second)
        await hub_a.start()
        await hub_b.start()
        link = LinkClient([hub_a.url, hub_b.url], "node-2", KEYS["node-2"], backoff=FAST)
        await link.start(5)
        acks = [await link.submit(poll("meter", BASE_MS + i * 1000, i)) for i in range(40)]
        await acks[9]
        await hub_a.stop(abort=True)  # a crash: frames in flight are not acknowledged
        for i in range(40, 60):
            acks.append(await link.submit(poll("meter", BASE_MS + i * 1000, i)))
        await asyncio.wait_for(asyncio.gather(*acks), 20)
        assert str(link.url) == hub_b.url
        await link.close()
        await hub_b.stop()
        stored = await stored_readings(first._js)
        assert sorted(stored) == [("node-2", seq) for seq in range(1, 61)]
        assert set(stored.values()) == {1}


async def test_a_restarted_node_continues_after_the_last_stored_seq(
    nats_cluster: NatsCluster,
) -> None:
    async with (
        FleetIngest(nats_cluster.urls) as ingest,
        fleet_hub(ingest) as hub,
        LinkClient(hub.url, "node-3", KEYS["node-3"]) as link,
    ):
        for i in range(5):
            await link.send(b"first life %d" % i)
    # another hub, a new process of the node: its frames must not look like the old ones
    async with FleetIngest(nats_cluster.urls) as ingest, fleet_hub(ingest) as hub:
        async with LinkClient(hub.url, "node-3", KEYS["node-3"]) as link:
            assert link.session is not None and link.session.resume_seq == 5
            await link.send(b"second life")
        stored = await stored_readings(ingest._js)
    assert sorted(stored) == [("node-3", seq) for seq in range(1, 7)]


async def test_a_hub_whose_stream_lost_its_quorum_acknowledges_nothing(
    nats_cluster: NatsCluster,
) -> None:
    async with (
        FleetIngest(nats_cluster.urls, publish_deadline_s=0.5) as ingest,
        fleet_hub(ingest) as hub,
    ):
        link = LinkClient(hub.url, "node-4", KEYS["node-4"], backoff=FAST)
        await link.start(5)
        await link.send(b"stored")
        for node in nats_cluster.nodes[1:]:
            nats_cluster.kill(node)  # 1 of 3 replicas left: no quorum, no store
        ack = await link.submit(b"not stored")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(ack), 3)
        assert link.pending == 1
        await link.close()
