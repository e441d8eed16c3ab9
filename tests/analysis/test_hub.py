"""Analysis at the hub: polls relayed over a real MCP link (LinkClient -> LinkServer) are
analysed there, and the findings reach a real MQTT broker on .../<node>/<device>/analysis."""

from __future__ import annotations

import json

from mcptool.analysis import AnalysisConfig, ThresholdRule
from mcptool.analysis.hub import HubAnalysis
from mcptool.link import LinkClient, LinkServer
from simulators.ollama import OllamaSimulator
from tests.analysis.conftest import T0, Collector, fast_model

KEY = b"a shared secret of the plant-1 gateway"


def poll(device: str, t: float, level: float) -> bytes:
    """A poll message as the gateway spools and relays it."""
    readings = [
        {
            "device": device,
            "point": "level",
            "seq": 1,
            "ts": round(t * 1000),
            "value": level,
            "quality": "good",
            "unit": "cm",
        },
        {
            "device": device,
            "point": "valve",
            "seq": 2,
            "ts": round(t * 1000),
            "value": True,
            "quality": "good",
        },
    ]
    message = {
        "node": "plant-1",
        "device": device,
        "kind": "telemetry",
        "seq": 1,
        "ts": round(t * 1000),
        "readings": readings,
    }
    return json.dumps(message).encode()


CONFIG = AnalysisConfig(
    window_s=10.0,
    zscore=None,
    thresholds=(ThresholdRule("level", above=80.0),),
    offline_after_s=None,
    min_call_interval_s=0.0,
)


async def relay(analysis: HubAnalysis, bodies: list[bytes]) -> None:
    """Send ``bodies`` from a gateway node over a real link to a hub that analyses them."""
    server = LinkServer(keys={"plant-1": KEY}, on_data=analysis.on_data)
    await server.start()
    try:
        async with LinkClient(server.url, "plant-1", KEY) as link:
            for body in bodies:
                await link.send(body)
    finally:
        await server.stop()


def tank_data() -> list[bytes]:
    """Two windows of a tank; the second one overflows past 80 cm."""
    return [poll("tank", T0 + i, 50.0 if i < 10 else 90.0) for i in range(20)] + [
        poll("tank", T0 + 20, 50.0)  # opens the third window, closing the second
    ]


async def test_relayed_polls_are_analysed_at_the_hub(ollama: OllamaSimulator) -> None:
    sink = Collector()
    model = fast_model(ollama.url, CONFIG)
    analysis = HubAnalysis(CONFIG, model=model, sinks=[sink], closers=[model])
    async with analysis:
        await relay(analysis, tank_data())
        [finding] = await sink.wait_for("finding")
        await analysis.pipeline.wait_idle()
    assert analysis.polls == 21
    assert finding["node"] == "plant-1" and finding["device"] == "tank"
    assert finding["source"] == "model" and finding["window"]["start"] == T0 + 10
    assert finding["statistics"]["level"]["unit"] == "cm"  # units came with the readings
    [trigger] = sink.of("trigger")
    assert trigger["rule"] == "threshold" and trigger["node"] == "plant-1"


async def test_frames_that_are_not_polls_are_skipped_and_the_rest_analysed() -> None:
    sink = Collector()
    analysis = HubAnalysis(CONFIG, model=None, sinks=[sink])
    async with analysis:
        for body in (
            b"\xff\x00 not json",
            b"[1, 2]",
            b'{"device": "tank", "ts": "soon", "readings": []}',
            b'{"type": "finding", "device": "tank"}',
            # by its kind: a finding with readings is still not a poll
            b'{"kind": "finding", "device": "tank", "ts": 1, "readings": [{"point": "level"}]}',
            # a poll of an older gateway names no kind: not analysed (nothing is guessed)
            json.dumps({**json.loads(tank_data()[0]), "kind": None}).encode(),
        ):
            analysis.on_data("plant-1", 1, body)
        for body in tank_data():
            analysis.on_data("plant-1", 2, body)
        [finding] = await sink.wait_for("finding")
    assert analysis.frames == 27 and analysis.polls == 21
    assert finding["source"] == "statistics" and finding["device"] == "tank"


async def test_a_node_id_with_a_slash_is_not_split_at_it() -> None:
    """The pipeline names a device "<node>/<device>"; its records give node and device
    back as they came, not cut at the first "/"."""
    sink = Collector()
    analysis = HubAnalysis(CONFIG, model=None, sinks=[sink])
    async with analysis:
        for body in tank_data():
            analysis.on_data("site-3/line/2", 1, body)
        [finding] = await sink.wait_for("finding")
    assert (finding["node"], finding["device"]) == ("site-3/line/2", "tank")
