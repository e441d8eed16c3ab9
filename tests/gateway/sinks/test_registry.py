"""The sink registry: a sink declared once (settings model, factory, window, drop kinds)
is configured, checked, built, fed and reported on like the built-in ones."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from mcptool.gateway import ConfigError, Dropped, Gateway, Kind, Record, parse_config
from mcptool.gateway.preflight import path_problems
from mcptool.gateway.sinks.registry import SINKS, SinkType
from mcptool.problems import Problem
from simulators.modbus import ModbusSimulator
from tests.gateway.conftest import gateway_config, until


class MemorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str = "memory"
    window: int = Field(default=8, ge=1)
    max_readings: int = Field(default=1000, ge=1)  # a poll over it is dropped, reported
    log: str | None = None  # a file it would write


class MemorySink:
    """Keeps what it is sent; gives up on a poll with more readings than it takes."""

    name = "memory"
    hint = "it is in memory"

    def __init__(self, settings: MemorySettings) -> None:
        self.settings = settings
        self.records: list[Record] = []
        self.on_drop = None
        self._never: asyncio.Future[None] | None = None

    async def connect(self) -> None:
        self._never = asyncio.get_running_loop().create_future()

    async def send(self, record: Record) -> None:
        if record.count > self.settings.max_readings:
            assert self.on_drop is not None  # the gateway gave it the spool's ledger
            why = f"memory: {record.count} readings"
            self.on_drop(
                Dropped(record.stream, record.seq_first, record.seq_last, why, "memory", "too_big")
            )
            return
        self.records.append(record)

    async def watch(self) -> None:
        assert self._never is not None
        await self._never

    async def close(self) -> None:
        return None


def _problems(settings: MemorySettings) -> list[Problem]:
    return [] if settings.label.strip() else [Problem("label", "give it a name")]


MEMORY = SinkType(
    name="memory",
    settings=MemorySettings,
    build=lambda settings, context: MemorySink(settings),
    drop_kinds=("too_big",),
    window=lambda settings: settings.window,
    problems=_problems,
    files=lambda s: [] if s.log is None else [("log", s.log, True)],
    describe=lambda settings: f"memory ({settings.label})",
)
REGISTRY = SINKS.with_sink(MEMORY)


def config(sim: ModbusSimulator, tmp_path: Path, **memory: object) -> dict[str, object]:
    return gateway_config(sim, tmp_path, mqtt_port=None, memory=memory)


async def test_a_sink_in_the_registry_is_configured_built_and_fed(
    devices: ModbusSimulator, tmp_path: Path
) -> None:
    parsed = parse_config(config(devices, tmp_path, label="lab"), sinks=REGISTRY)
    [(sink, settings)] = parsed.enabled_sinks()  # the only destination: a valid config
    assert (sink.name, sink.label(settings), sink.window(settings)) == ("memory", "memory (lab)", 8)
    async with Gateway(parsed) as gw:
        memory = gw.sink("memory")
        assert isinstance(memory, MemorySink)
        await until(lambda: len(memory.records) >= 6, what="records in the memory sink")
        [forwarder] = gw.forwarders
        assert forwarder.window == 8  # from its settings, through the registry
        status = gw.status()
    assert [s["name"] for s in status["sinks"]] == ["memory"]
    assert {r.kind for r in memory.records} == {Kind.TELEMETRY}
    assert json.loads(memory.records[0].payload)["kind"] == "telemetry"


async def test_a_sink_that_declares_drop_kinds_reports_into_the_spools_ledger(
    devices: ModbusSimulator, tmp_path: Path
) -> None:
    parsed = parse_config(config(devices, tmp_path, max_readings=5), sinks=REGISTRY)
    async with Gateway(parsed) as gw:
        assert gw.sink("memory").on_drop == gw.spool.report_drop  # type: ignore[attr-defined]
        await until(lambda: gw.spool.sink_dropped("memory").get("d0", 0) >= 10)
        status = gw.status()
    [memory] = status["sinks"]
    assert memory["dropped"] >= 30  # three devices, each poll of 10 readings over 5
    assert ("memory", "d0", "too_big") in gw.spool.drops()


def test_its_table_is_validated_with_exact_paths_and_every_problem_at_once(
    devices: ModbusSimulator, tmp_path: Path
) -> None:
    raw = config(devices, tmp_path, window=0, colour="red")
    raw["spool"] = {"policy": "keep_all"}
    with pytest.raises(ConfigError) as refused:
        parse_config(raw, sinks=REGISTRY)
    assert [str(p) for p in refused.value.problems] == [
        "spool.policy: should be 'drop_oldest' or 'drop_newest', got 'keep_all'",
        "memory.window: should be greater than or equal to 1, got 0",
        "memory.colour: unknown setting (check its spelling)",
    ]
    with pytest.raises(ConfigError, match=r"memory.label: give it a name"):
        parse_config(config(devices, tmp_path, label=" "), sinks=REGISTRY)


def test_without_the_registry_entry_the_table_is_unknown(
    devices: ModbusSimulator, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="memory: unknown setting"):
        parse_config(config(devices, tmp_path))


def test_the_files_it_declares_are_checked_before_a_run(
    devices: ModbusSimulator, tmp_path: Path
) -> None:
    (tmp_path / "dir").mkdir()
    parsed = parse_config(config(devices, tmp_path, log=str(tmp_path / "dir")), sinks=REGISTRY)
    [problem] = path_problems(parsed)
    assert problem.path == "memory.log" and "is a directory" in problem.message


def test_a_sink_that_is_switched_off_is_not_built(devices: ModbusSimulator, tmp_path: Path) -> None:
    off = SinkType(
        name="memory",
        settings=MemorySettings,
        build=lambda settings, context: pytest.fail("built although switched off"),
        enabled=lambda settings: False,
        delivers=False,
    )
    raw = config(devices, tmp_path)
    raw["jsonl"] = {"path": str(tmp_path / "out.jsonl")}
    parsed = parse_config(raw, sinks=SINKS.with_sink(off))
    assert [sink.name for sink, _ in parsed.enabled_sinks()] == ["jsonl"]
    assert "memory" in parsed.sinks
    Gateway(parsed)  # builds jsonl only


def test_the_built_in_sinks_declare_the_drop_kinds_they_report() -> None:
    from mcptool.gateway.sinks.mcp import OVER_FRAME
    from mcptool.gateway.sinks.mqtt import DISCONNECTS, OVER_MAX_PACKET, REFUSED

    assert {sink.name: sink.drop_kinds for sink in SINKS} == {
        "mqtt": (OVER_MAX_PACKET, REFUSED, DISCONNECTS),
        "jsonl": (),
        "uplink": (OVER_FRAME,),
    }
