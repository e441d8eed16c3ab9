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


# -- health checks -----------------------------------------------------------------------


def checked(sim_url: str, model: str, weight: float = 1.0, **options: object) -> Route:
    config = AnalysisConfig(model=model, request_timeout_s=1.0)
    return Route(
        f"{model}@{sim_url}",
        fast_model(sim_url, config),
        weight,
        endpoint=sim_url,
        **options,  # type: ignore[arg-type]
    )


async def test_routes_down_or_without_their_model_are_skipped_before_a_window_waits(
    sims: list[OllamaSimulator], caplog: pytest.LogCaptureFixture
) -> None:
    small, big, other = sims  # big serves big:7b; the route below asks other for "huge:14b"
    async with OllamaSimulator(models=["gone:1b"], port=0) as gone:
        down_url = gone.url
    big.inject("status", status=503, message=BUSY_MESSAGE, times=None, paths=CHAT)
    clock = Clock()
    router = RoutedModel(
        [
            checked(down_url, "gone:1b"),
            checked(other.url, "huge:14b"),
            checked(big.url, "big:7b"),  # answers its checks, 503 to every chat
            checked(small.url, "small:0.5b", fallback=True),
        ],
        check_s=60.0,
        clock=clock,
    )
    with caplog.at_level("WARNING", logger="mcptool.analysis.health_checks"):
        await router.preload()  # the first round of checks, then the timer
    health = {r["route"]: (r["health"], r["health_reason"]) for r in router.status()}
    assert health[f"gone:1b@{down_url}"][0] == "unhealthy"
    assert health[f"huge:14b@{other.url}"] == (
        "unhealthy",
        f"model huge:14b is not served at {other.url}, which serves only other:1b: name one"
        " of those in the route, or serve huge:14b there (`mcptool model serve --model"
        " FILE.gguf --name huge:14b`)",
    )
    assert health[f"big:7b@{big.url}"] == ("healthy", "")  # busy is per call: the breaker's
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # one line per route unhealthy at start: endpoint, model, fix
    assert warnings[0].startswith(f"analysis route gone:1b at {down_url} is not healthy at start")
    assert "is `ollama serve` running?" in warnings[0]
    # the simulator (like model serve) cannot pull: no `ollama pull` advice for it
    assert "--name huge:14b" in warnings[1] and other.url in warnings[1]
    assert "ollama pull" not in warnings[1]
    for _ in range(10):
        answer = await router.ask(MESSAGES, SCHEMA)
        assert answer.model == "small:0.5b"
    down, nomodel, busy, _ = router.routes
    assert down.failed == 0 and nomodel.failed == 0  # skipped, never asked
    assert other.counters.by_path["/api/chat"] == 0
    assert busy.failed == 3 and router.status()[2]["breaker"] == "open"  # the breaker's work
    other.add_model("huge:14b")  # pulled: the next check lets it rejoin
    clock.now = 61.0
    with caplog.at_level("INFO", logger="mcptool.analysis.health_checks"):
        changes = await router.check_health()
    assert [(c.model, c.healthy) for c in changes] == [("huge:14b", True)]
    assert any("huge:14b" in r.getMessage() and "rejoins" in r.getMessage() for r in caplog.records)
    answers = {(await router.ask(MESSAGES, SCHEMA)).model for _ in range(20)}
    await router.aclose()
    assert "huge:14b" in answers
    assert other.counters.by_path["/api/tags"] == 2  # one check per round, off the calls


async def test_when_every_route_is_unhealthy_the_window_waits_with_the_reasons(
    sims: list[OllamaSimulator],
) -> None:
    small, _, _ = sims
    router = RoutedModel([checked(small.url, "missing:1b")], check_s=60.0)
    await router.preload()
    with pytest.raises(ModelUnavailable, match=r"unhealthy \(model missing:1b is not served"):
        await router.ask(MESSAGES, SCHEMA)
    await router.aclose()
    assert small.counters.by_path["/api/chat"] == 0


async def test_route_health_is_in_the_metrics(sims: list[OllamaSimulator]) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from mcptool.analysis import AnalysisCollector, AnalysisPipeline

    small, _, _ = sims
    async with OllamaSimulator(models=["gone:1b"], port=0) as gone:
        down_url = gone.url
    router = RoutedModel(
        [checked(small.url, "small:0.5b"), checked(down_url, "gone:1b")], check_s=60.0
    )
    await router.preload()
    pipeline = AnalysisPipeline(AnalysisConfig(), sink=_ignore, model=router)
    registry = CollectorRegistry()
    registry.register(AnalysisCollector(pipeline))
    text = generate_latest(registry).decode()
    await router.aclose()
    pipeline.backlog.close()
    healthy = "mcptool_analysis_route_healthy"
    assert f'{healthy}{{endpoint="{small.url}",model="small:0.5b"}} 1.0' in text
    assert f'{healthy}{{endpoint="{down_url}",model="gone:1b"}} 0.0' in text
    assert "mcptool_analysis_route_breaker_open{" in text


async def _ignore(record: dict[str, object]) -> None:
    return None


# -- critical windows to the bigger model first -------------------------------------------


async def test_critical_windows_go_to_the_big_route_first_and_the_rest_by_weight(
    sims: list[OllamaSimulator],
) -> None:
    from mcptool.analysis.model import asking_about

    small, big, other = sims
    router = RoutedModel(
        [
            route(small, weight=9),
            route(other, weight=1),
            Route("big", route(big).model, fallback=True, first_for="critical"),
        ],
        rng=random.Random(3),
    )
    critical, warning = [], []
    for i in range(200):
        severity = "critical" if i % 4 == 0 else "warning"
        with asking_about(severity):
            model = (await router.ask(MESSAGES, SCHEMA)).model
        (critical if severity == "critical" else warning).append(model)
    await router.aclose()
    assert set(critical) == {"big:7b"}  # every one of the 50
    assert "big:7b" not in warning  # a fallback: only when the others cannot answer
    assert 0.04 <= warning.count("other:1b") / len(warning) <= 0.17  # the 9:1 split holds


def test_a_route_s_first_for_is_a_severity() -> None:
    with pytest.raises(Exception) as failed:
        AnalysisConfig.from_dict({"routes": [{"model": "big", "first_for": "urgent"}]})
    assert str(failed.value) == (
        "analysis.routes[0].first_for: should be 'warning' or 'critical', got 'urgent'"
    )


async def test_the_pipeline_tells_the_router_each_window_s_severity(
    sims: list[OllamaSimulator], pipeline_config: AnalysisConfig
) -> None:
    """Threshold windows through the whole pipeline: the critical one is explained by the
    big model, the warning by the small one; with the big model down, the critical window
    still gets a model finding, from the next route in the chain."""
    import dataclasses

    from mcptool.analysis import AnalysisPipeline, ThresholdRule
    from tests.analysis.conftest import Clock as WallClock
    from tests.analysis.conftest import Collector, drive

    small, big, _ = sims
    config = dataclasses.replace(
        pipeline_config,
        thresholds=(
            ThresholdRule(point="p", above=90.0, severity="critical"),
            ThresholdRule(point="p", above=70.0),
        ),
    )
    big_route = Route("big", route(big).model, fallback=True, first_for="critical")
    router = RoutedModel([route(small), big_route])
    sink = Collector()
    clock = WallClock()
    pipeline = AnalysisPipeline(config, sink=sink, model=router, clock=clock)
    async with pipeline:
        drive(pipeline, clock, "boiler", [0], lambda w, i: 95.0)  # critical
        drive(pipeline, clock, "boiler", [1], lambda w, i: 75.0)  # warning
        drive(pipeline, clock, "boiler", [2], lambda w, i: 60.0)  # closes window 1
        await sink.wait_for("finding", 2, source="model")
        await big.stop()  # the big box goes away
        drive(pipeline, clock, "boiler", [3], lambda w, i: 96.0)  # critical again
        drive(pipeline, clock, "boiler", [4], lambda w, i: 60.0)
        findings = await sink.wait_for("finding", 3, source="model")
    await router.aclose()
    assert [(f["severity"], f["model"]) for f in findings] == [
        ("critical", "big:7b"),
        ("warning", "small:0.5b"),
        ("critical", "small:0.5b"),  # the big route cannot answer: the chain goes on
    ]
    assert big_route.failed == 1


async def test_the_gateway_s_live_status_shows_each_route_s_health(
    sims: list[OllamaSimulator], tmp_path: object
) -> None:
    from rich.console import Console

    from mcptool.commands.gateway import _render
    from tests.gateway.conftest import until

    small, _, other = sims  # other has no big:7b
    config = parse_config(
        {
            "spool": {"path": f"{tmp_path}/spool.db"},
            "jsonl": {"path": f"{tmp_path}/out.jsonl"},
            "analysis": {
                "routes": [
                    {"model": "small:0.5b", "ollama": small.url},
                    {"model": "big:7b", "ollama": other.url, "first_for": "critical"},
                ]
            },
            "devices": [
                {"name": "d", "host": "127.0.0.1", "points": [{"name": "p", "address": 0}]}
            ],
        }
    )

    def analysis() -> dict[str, object]:
        return next(s for s in gateway.status()["sinks"] if s["name"] == "analysis")

    async with edge_gateway(config) as gateway:
        await until(lambda: "unhealthy" in str(analysis()["detail"]), what="the first checks")
        status = gateway.status()
    assert analysis()["detail"] == "routes: small:0.5b healthy, big:7b unhealthy"
    console = Console(width=300, record=True)
    console.print(_render({**status, "uptime": 1.0}))
    text = console.export_text()
    assert "analysis: connected lag 0, routes: small:0.5b healthy, big:7b unhealthy" in text
