"""A device that goes silent has its last window closed by the hub's clock, once, whichever
hub sees it next; a reading of that window arriving afterwards is stored, not analysed."""

from __future__ import annotations

import json
import math
import time

from mcptool.fleet import FleetIngest
from mcptool.fleet.subjects import HEADER_CLOSED, MSG_ID, WINDOWS_STREAM, window_id
from mcptool.link import LinkClient
from simulators.nats import NatsCluster
from tests.fleet.conftest import KEYS
from tests.fleet.stream_reader import messages, poll, stored_readings
from tests.fleet.test_ingest import fleet_hub
from tests.fleet.test_proof import until


async def test_a_silent_devices_last_window_closes_by_time_once_across_hubs(
    nats_cluster: NatsCluster,
) -> None:
    # a window long past (a backlog, say): what counts is when its readings arrive
    window = math.floor(time.time()) - 100
    base_ms = window * 1000
    async with (
        FleetIngest(nats_cluster.urls, window_s=1, grace_s=0.3) as first,
        FleetIngest(nats_cluster.urls, window_s=1, grace_s=0.3) as second,
    ):
        js = first._js

        async def queued() -> list[str]:
            return [m.headers[MSG_ID] for m in await messages(js, WINDOWS_STREAM)]

        async def queued_has(wanted: str) -> bool:
            return wanted in await queued()

        async with fleet_hub(first) as hub, LinkClient(hub.url, "node-1", KEYS["node-1"]) as link:
            for ms in (100, 400, 700):
                await link.send(poll("boiler", base_ms + ms, 20))
            # then nothing: no later reading will close the window
            first_window = window_id("node-1", "boiler", window)
            await until(lambda: queued_has(first_window), 20, "the window")
        [closed] = [json.loads(m.data) for m in await messages(js, WINDOWS_STREAM)]
        assert (closed["index"], closed["last"] - closed["first"]) == (window, 2)

        # the node comes back through another hub: first a reading of the closed window,
        # then one far later, which opens a window and closes nothing
        async with (
            fleet_hub(second) as hub,
            LinkClient(hub.url, "node-1", KEYS["node-1"]) as link,
        ):
            await link.send(poll("boiler", base_ms + 900, 21))
            await link.send(poll("boiler", base_ms + 60_000, 22))
            later = window_id("node-1", "boiler", window + 60)
            await until(lambda: queued_has(later), 20, "the later window")  # by time too
        assert await queued() == [first_window, later]
        assert first.windower.closed_by_time == 1
        assert second.windower.closed == 1  # it never published the first window again
        assert second.windower.late == 1
        # and /metrics says so
        sample = first.metrics.registry.get_sample_value
        assert sample("mcptool_fleet_windows_closed_by_time_total") == 1
        assert second.metrics.registry.get_sample_value("mcptool_fleet_readings_late_total") == 1
        stored = await stored_readings(js)
        assert sorted(stored) == [("node-1", seq) for seq in range(1, 6)]
        assert set(stored.values()) == {1}
        late = await js.get_msg("FLEET_DATA", 4)
        assert (late.headers or {}).get(HEADER_CLOSED) == str(window)


async def test_a_hub_taking_a_node_over_closes_its_silent_devices_windows_too(
    nats_cluster: NatsCluster,
) -> None:
    window = math.floor(time.time()) - 100
    async with (
        FleetIngest(nats_cluster.urls, window_s=1, grace_s=3600) as first,
        FleetIngest(nats_cluster.urls, window_s=1, grace_s=0.3) as second,
    ):
        js = first._js
        async with fleet_hub(first) as hub, LinkClient(hub.url, "node-2", KEYS["node-2"]) as link:
            for device in ("boiler", "pump 2"):
                await link.send(poll(device, window * 1000 + 100, 20))
        # the first hub is gone before its (long) grace; the node comes back elsewhere and
        # sends nothing more of either device
        async with fleet_hub(second) as hub, LinkClient(hub.url, "node-2", KEYS["node-2"]):
            wanted = {window_id("node-2", device, window) for device in ("boiler", "pump 2")}

            async def both() -> bool:
                queued = {m.headers[MSG_ID] for m in await messages(js, WINDOWS_STREAM)}
                return queued == wanted

            await until(both, 20, "both devices' windows")
        assert first.windower.closed == 0
