"""Routing between models, against several Ollama simulators through the real client:
one dead, one stalling past its timeout, one at 503; weights and the breaker."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from mcptool.analysis import AnalysisConfig, OllamaModel
from mcptool.analysis.findings import finding_schema
from mcptool.analysis.model import ModelUnavailable
from mcptool.analysis.routing import Route, RoutedModel
from mcptool.edge import edge_gateway, parse_config
from simulators.ollama import BUSY_MESSAGE, OllamaSimulator
from tests.analysis.conftest import fast_model

MESSAGES = [{"role": "user", "content": "p is 80, above 70."}]
SCHEMA = finding_schema(["p"])
CHAT = ("/api/chat",)


@pytest.fixture
async def sims() -> AsyncIterator[list[OllamaSimulator]]:
    names = ["small:0.5b", "big:7b", "other:1b"]
    started = [OllamaSimulator(models=[n], port=0) for n in names]
    for sim in started:
        await sim.start()
    yield started
    for sim in started:
        await sim.stop()


def route(sim: OllamaSimulator, weight: float = 1.0, fallback: bool = False) -> Route:
    name = next(iter(sim.models))
    config = AnalysisConfig(model=name, request_timeout_s=1.0)
    return Route(name, fast_model(sim.url, config), weight, fallback)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_busy_first_model_hands_the_window_to_the_next(
    sims: list[OllamaSimulator],
) -> None:
    small, big, _ = sims
    small.inject("status", status=503, message=BUSY_MESSAGE, times=None, paths=CHAT)
    router = RoutedModel([route(small), route(big, fallback=True)])
    answer = await router.ask(MESSAGES, SCHEMA)
    await router.aclose()
    assert answer.model == "big:7b"  # recorded on the finding
    assert [r.answered for r in router.routes] == [0, 1]


async def test_a_dead_and_a_stalled_model_are_passed_over(sims: list[OllamaSimulator]) -> None:
    small, _, other = sims
    async with OllamaSimulator(models=["gone:1b"], port=0) as gone:
        dead = route(gone)
    small.inject("stall", seconds=None, times=None, paths=CHAT)
    router = RoutedModel([dead, route(small, fallback=True), route(other, fallback=True)])
    answer = await router.ask(MESSAGES, SCHEMA)
    await router.aclose()
    assert answer.model == "other:1b"
    assert [r.failed for r in router.routes] == [1, 1, 0]


async def test_the_weights_hold_over_many_windows(sims: list[OllamaSimulator]) -> None:
    small, big, _ = sims
    router = RoutedModel([route(small, weight=9), route(big, weight=1)], rng=random.Random(7))
    for _ in range(200):
        await router.ask(MESSAGES, SCHEMA)
    await router.aclose()
    share = router.routes[1].answered / 200
    assert 0.05 <= share <= 0.16  # 10 % of the windows try the new model
    assert small.counters.by_path["/api/chat"] + big.counters.by_path["/api/chat"] == 200


async def test_the_breaker_opens_after_failures_and_closes_after_its_reset(
    sims: list[OllamaSimulator],
) -> None:
    small, big, _ = sims
    small.inject("status", status=503, message=BUSY_MESSAGE, times=None, paths=CHAT)
    clock = Clock()
    router = RoutedModel(
        [route(small), route(big, fallback=True)], failures=2, reset_s=30.0, clock=clock
    )
    for _ in range(5):
        await router.ask(MESSAGES, SCHEMA)
    assert small.counters.by_path["/api/chat"] == 2  # open after two: the rest skip it
    small.clear_faults()
    clock.now = 31.0  # half open: one call tries it again, and it answers
    answer = await router.ask(MESSAGES, SCHEMA)
    await router.aclose()
    assert answer.model == "small:0.5b" and router.routes[0].failures == 0


async def test_when_no_route_answers_the_window_waits_as_for_one_model(
    sims: list[OllamaSimulator],
) -> None:
    small, big, _ = sims
    for sim in (small, big):
        sim.inject("status", status=503, message=BUSY_MESSAGE, times=None, paths=CHAT)
    router = RoutedModel([route(small), route(big, fallback=True)])
    with pytest.raises(ModelUnavailable, match=r"small:0\.5b: .*big:7b: "):
        await router.ask(MESSAGES, SCHEMA)
    await router.aclose()


async def test_the_config_s_routes_make_the_gateway_s_model(tmp_path: object) -> None:
    config = parse_config(
        {
            "spool": {"path": f"{tmp_path}/spool.db"},
            "jsonl": {"path": f"{tmp_path}/out.jsonl"},
            "analysis": {
                "routes": [
                    {"model": "qwen2.5-coder:0.5b", "ollama": "http://127.0.0.1:11435"},
                    {"model": "llama3.1:8b", "ollama": "http://127.0.0.1:11434", "weight": 0.1},
                    {"model": "big", "ollama": "http://127.0.0.1:11436", "fallback": True},
                ]
            },
            "devices": [
                {"name": "d", "host": "127.0.0.1", "points": [{"name": "p", "address": 0}]}
            ],
        }
    )
    gateway = edge_gateway(config)
    pipeline = gateway.sink("analysis").pipeline  # type: ignore[attr-defined]
    try:
        router = pipeline.model
        assert isinstance(router, RoutedModel)
        assert [(r.name, r.weight, r.fallback) for r in router.routes] == [
            ("qwen2.5-coder:0.5b@http://127.0.0.1:11435", 1.0, False),
            ("llama3.1:8b@http://127.0.0.1:11434", 0.1, False),
            ("big@http://127.0.0.1:11436", 1.0, True),
        ]
        assert isinstance(router.routes[0].model, OllamaModel)
        assert router.routes[0].model.name == "qwen2.5-coder:0.5b"
    finally:
        await pipeline.close()
        await router.aclose()


def test_a_route_needs_a_model() -> None:
    with pytest.raises(Exception, match=r"analysis.routes\[0\].model"):
        AnalysisConfig.from_dict({"routes": [{"ollama": "http://127.0.0.1:1"}]})
