"""The status publisher owns the retained statuses: what it says on each connect, the will
it leaves with the broker, the last word at a clean stop. Here against a recording channel;
against a real broker (the will after SIGKILL, offline at a clean stop) in test_gateway."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from mcptool.gateway.status import StatusPublisher


class Channel:
    """Records what is published retained; ``connected`` as a test sets it."""

    def __init__(self) -> None:
        self.will: Callable[[], tuple[str, bytes]] | None = None
        self.on_connected: list[Callable[[], Awaitable[None]]] = []
        self.connected = False
        self.published: list[tuple[str, dict[str, object]]] = []

    async def publish_retained(self, topic: str, payload: bytes) -> None:
        self.published.append((topic, json.loads(payload)))

    async def connect(self) -> None:
        self.connected = True
        for connected in self.on_connected:
            await connected()


def publisher(channel: Channel) -> StatusPublisher:
    return StatusPublisher(
        channel,
        "plant-1",
        status_topic="site/{node}/{device}/state",
        gateway_topic="site/{node}/state",
        summary=lambda: {"devices": 2},
    )


def test_the_will_is_the_gateway_offline_on_its_own_topic() -> None:
    channel = Channel()
    publisher(channel)
    assert channel.will is not None
    topic, payload = channel.will()
    assert topic == "site/plant-1/state"
    assert json.loads(payload)["status"] == "offline"


async def test_each_connect_says_online_and_every_latest_device_status_again() -> None:
    channel = Channel()
    statuses = publisher(channel)
    statuses.device("boiler", {"status": "online"})  # not connected: kept, not sent
    statuses.device("boiler", {"status": "offline", "reason": "timeout"})
    assert channel.published == []
    await channel.connect()
    assert channel.published == [
        (
            "site/plant-1/state",
            {"status": "online", "ts": channel.published[0][1]["ts"], "devices": 2},
        ),
        ("site/plant-1/boiler/state", {"status": "offline", "reason": "timeout"}),
    ]
    channel.published.clear()
    statuses.device("pump", {"status": "online"})  # connected: sent at once
    await statuses.drain()
    assert channel.published == [("site/plant-1/pump/state", {"status": "online"})]


async def test_the_last_word_is_offline_for_every_device_then_the_gateway() -> None:
    channel = Channel()
    statuses = publisher(channel)
    assert not await statuses.say_offline({"boiler": {"status": "offline"}})  # no connection
    await channel.connect()
    channel.published.clear()
    offline = {"status": "offline", "reason": "gateway stopped"}
    assert await statuses.say_offline({"boiler": offline, "pump": offline})
    assert [(t, p["status"]) for t, p in channel.published] == [
        ("site/plant-1/boiler/state", "offline"),
        ("site/plant-1/pump/state", "offline"),
        ("site/plant-1/state", "offline"),
    ]
