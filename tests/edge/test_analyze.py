"""The hub's ``analyze`` action end to end: a node sends a window in a REQUEST over a real
MCP link, the hub's LinkServer answers through the hub's model (a router over Ollama
simulators), and the RESPONSE carries the finding and the model that answered."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mcptool.analysis import AnalysisConfig
from mcptool.edge import analyze_handler, hub_analysis
from mcptool.edge.hub import NO_MODEL
from mcptool.frame import ResponseEnvelope
from mcptool.link import LinkClient, LinkServer
from simulators.ollama import OllamaSimulator

KEY = b"a shared secret of node-1"
T0 = 1_700_000_000.0


def window(temperature: float, **extra: Any) -> dict[str, Any]:
    """Ten readings of a boiler a second apart, its supply temperature at ``temperature``."""
    return {
        "device": "boiler-1",
        "description": "gas boiler, 90 kW",
        "points": [
            {"name": "supply_temperature", "unit": "°C", "above": 95, "severity": "critical"},
            {"name": "pressure", "unit": "bar", "below": 1.0},
        ],
        "readings": [
            {
                "time": T0 + i,
                "values": {"supply_temperature": temperature + 0.1 * i, "pressure": 1.5},
            }
            for i in range(10)
        ],
        **extra,
    }


@pytest.fixture
async def sims() -> AsyncIterator[tuple[OllamaSimulator, OllamaSimulator]]:
    async with (
        OllamaSimulator(models=["small:0.5b"], port=0) as small,
        OllamaSimulator(models=["big:7b"], port=0) as big,
    ):
        yield small, big


async def serve(analysis: Any) -> LinkServer:
    server = LinkServer(
        keys={"node-1": KEY}, handlers={"analyze": analyze_handler(analysis, timeout_s=20)}
    )
    await server.start()
    return server


async def ask(analysis: Any, data: Any) -> ResponseEnvelope:
    """One analyze REQUEST from node-1 to a hub with ``analysis`` (None: no model)."""
    async with analysis or contextlib.nullcontext():
        server = await serve(analysis)
        try:
            async with LinkClient(server.url, "node-1", KEY) as link:
                return await link.request("analyze", data, timeout=30)
        finally:
            await server.stop()


async def test_an_analyze_request_gets_the_finding_of_the_routed_model(
    sims: tuple[OllamaSimulator, OllamaSimulator],
) -> None:
    small, big = sims
    config = AnalysisConfig.from_dict(
        {
            "routes": [
                {"model": "small:0.5b", "ollama": small.url},
                {"model": "big:7b", "ollama": big.url, "fallback": True, "first_for": "critical"},
            ]
        }
    )
    analysis = hub_analysis(None, None, model=None, config=config)
    async with analysis:
        server = await serve(analysis)
        try:
            async with LinkClient(server.url, "node-1", KEY) as link:
                critical = await link.request("analyze", window(96.0), timeout=30)
                warning = await link.request("analyze", window(70.0), timeout=30)
                await big.stop()  # the big box goes away: the chain goes on
                fallback = await link.request("analyze", window(97.0), timeout=30)
        finally:
            await server.stop()
    assert critical.code == 200, critical.message
    finding = critical.data["finding"]
    assert critical.data["model"] == "big:7b" == finding["model"]
    assert finding["device"] == "boiler-1" and finding["source"] == "model"
    assert finding["severity"] == "critical"  # the point's own threshold fired
    assert finding["window"] == {"start": T0, "end": T0 + 10, "seconds": 10.0}
    assert [t["rule"] for t in finding["triggers"]] == ["threshold", "every_window"]
    assert warning.code == 200 and warning.data["model"] == "small:0.5b"
    assert warning.data["finding"]["severity"] != "critical"  # at most a warning: no rule
    assert fallback.code == 200 and fallback.data["model"] == "small:0.5b"
    assert fallback.data["finding"]["severity"] == "critical"


@pytest.mark.parametrize(
    ("data", "message", "path"),
    [
        (
            window(90.0, readings=[{"time": "yesterday", "values": {"pressure": 1.0}}]),
            "bad analyze request: data.readings[0].time: should be a valid number, got 'yesterday'",
            "data.readings[0].time",
        ),
        (
            window(90.0, readings=[{"time": T0, "values": {"flow": 3.0}}]),
            "bad analyze request: data.readings[0].values.flow: flow is not one of the"
            " window's points (supply_temperature, pressure)",
            "data.readings[0].values.flow",
        ),
        (
            {"device": "boiler-1", "readings": [{"time": T0, "values": {"t": "hot"}}]},
            "bad analyze request: data.readings[0].values.t: should be a number, true, false"
            " or null (a failed read), got 'hot'",
            "data.readings[0].values.t",
        ),
        (
            {"device": "boiler-1"},
            "bad analyze request: data.readings: missing (required)",
            "data.readings",
        ),
        (
            [1, 2],
            "bad analyze request: data: should be an object with device, points and readings",
            "data",
        ),
    ],
)
async def test_a_bad_window_is_answered_400_with_the_field_s_path(
    sims: tuple[OllamaSimulator, OllamaSimulator], data: Any, message: str, path: str
) -> None:
    small, _ = sims
    response = await ask(hub_analysis(small.url, None, model="small:0.5b"), data)
    assert (response.code, response.message) == (400, message)
    assert response.data["problems"][0]["path"] == path
    assert small.counters.by_path["/api/chat"] == 0


async def test_a_hub_without_a_model_says_how_to_give_it_one() -> None:
    response = await ask(None, window(96.0))
    assert (response.code, response.message) == (503, NO_MODEL)


async def test_when_no_model_answers_the_statistics_finding_comes_back_503(
    sims: tuple[OllamaSimulator, OllamaSimulator],
) -> None:
    small, _ = sims
    small.inject("status", status=503, message="server busy", times=None)
    response = await ask(hub_analysis(small.url, None, model="small:0.5b"), window(96.0))
    assert response.code == 503 and response.message.startswith("no model finding: ")
    finding = response.data["finding"]
    assert finding["statistics_only"] and finding["severity"] == "critical"
