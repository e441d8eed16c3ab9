"""Analysis inside the gateway: a real gateway polls a simulated device, the analysis
reads the spool like any sink, and its findings leave through the gateway's own sinks
(here JSON Lines), next to the telemetry, as records of kind finding."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcptool.analysis.stats import DeviceWindow
from mcptool.edge import edge_gateway, parse_config
from mcptool.edge.analysis import RECORD_LIMIT, record_limit
from mcptool.edge.analysis_sink import fit
from mcptool.errors import UsageError
from simulators.modbus import DeviceProfile, ModbusSimulator
from simulators.modbus import Point as SimPoint
from simulators.ollama import OllamaSimulator


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_the_gateway_analyses_its_polls_and_forwards_findings_with_telemetry(
    tmp_path: Path, ollama: OllamaSimulator
) -> None:
    counter = SimPoint("holding", 0, "float32", value={"kind": "counter", "rate": 10}, name="p0")
    flat = SimPoint("holding", 2, "float32", value=1.5, name="p1")
    async with ModbusSimulator([DeviceProfile(name="tank", points=[counter, flat])]) as sim:
        host, port = sim.address
        jsonl = tmp_path / "out.jsonl"
        config = parse_config(
            {
                "node": "test",
                "spool": {"path": str(tmp_path / "spool.db"), "commit_interval": 0.02},
                "jsonl": {"path": str(jsonl)},
                "metrics": {"port": 0},
                "analysis": {
                    "ollama": ollama.url,
                    "window_s": 0.5,
                    "zscore": False,
                    "thresholds": [{"point": "level", "above": 5.0}],
                    "offline_after_s": False,
                    "min_call_interval_s": 0.0,
                    "cooldown_s": 3600.0,
                },
                "devices": [
                    {
                        "name": "tank",
                        "host": host,
                        "port": port,
                        "interval": 0.05,
                        "points": [
                            {"name": "level", "address": 0, "type": "float32", "unit": "cm"},
                            {"name": "pressure", "address": 2, "type": "float32", "unit": "bar"},
                        ],
                    }
                ],
            }
        )
        async with edge_gateway(config) as gw, asyncio.timeout(15):
            while not any(r.get("type") == "finding" for r in lines(jsonl)):
                await asyncio.sleep(0.05)
            async with httpx.AsyncClient() as http:
                scrape = await http.get(f"http://127.0.0.1:{gw.metrics_port}/metrics")
    records = lines(jsonl)
    polls = [r for r in records if r["kind"] == "telemetry"]
    assert {r["kind"] for r in records if "type" in r} == {"finding"}
    trigger = next(r for r in records if r.get("type") == "trigger")
    [finding] = [r for r in records if r.get("type") == "finding"]  # later ones: cooldown
    assert polls and polls[0]["device"] == "tank"
    assert trigger["rule"] == "threshold" and trigger["points"] == ["level"]
    assert finding["device"] == "tank" and finding["source"] == "model"
    assert finding["node"] == "test" and finding["seq"] > trigger["seq"]
    assert finding["statistics"]["level"]["unit"] == "cm"  # names and units from the map
    assert (tmp_path / "spool.db.analysis").exists()  # the backlog sits next to the spool
    metrics = scrape.text  # the analysis shows on the gateway's own /metrics
    assert 'mcptool_analysis_findings_total{source="model"} 1.0' in metrics
    assert f'mcptool_analysis_model_findings_total{{model="{finding["model"]}"}} 1.0' in metrics
    assert "mcptool_analysis_model_up 1.0" in metrics
    assert "mcptool_analysis_model_call_seconds_count 1.0" in metrics


def test_a_record_too_big_for_an_mcp_frame_is_cut_to_fit_and_says_so() -> None:
    stats = {f"p{i:03d}": {"mean": 1.0 / 3, "std": 2.0 / 3, "unit": "°C"} for i in range(400)}
    triggers = [
        {"rule": "stuck", "points": [f"p{i:03d}"], "detail": "x" * 200, "severity": "warning"}
        for i in range(100)
    ]
    message = {
        "type": "finding",
        "device": "plc",
        "severity": "warning",
        "summary": "s" * 30_000,
        "statistics": stats,
        "triggers": triggers,
    }
    payload = fit(message, 12_000)
    assert len(payload) <= 12_000
    record = json.loads(payload)
    assert record["truncated"] is True and record["statistics"] == {}
    assert (record["type"], record["device"], record["severity"]) == ("finding", "plc", "warning")
    assert record["summary"].startswith("sss")
    small = {"type": "finding", "device": "plc", "statistics": {"p": {"mean": 1.0}}}
    assert json.loads(fit(small, 12_000)) == small  # fits: untouched


def test_analysis_records_shrink_to_the_uplinks_frame_size() -> None:
    base = {
        "node": "n",
        "spool": {"path": "spool.db"},
        "devices": [{"name": "d", "host": "127.0.0.1", "points": [{"name": "p", "address": 0}]}],
    }
    uplink = {"url": "mcp://127.0.0.1:7000", "key": "k" * 32}
    default = parse_config({**base, "uplink": uplink})
    small = parse_config({**base, "uplink": {**uplink, "max_frame": 1024}})
    no_uplink = parse_config({**base, "jsonl": {"path": "out.jsonl"}})
    assert record_limit(default) == record_limit(no_uplink) == RECORD_LIMIT
    assert record_limit(small) < 1024
    finding = {"type": "finding", "device": "d", "summary": "s" * 5000, "statistics": {}}
    assert len(fit(finding, record_limit(small))) <= record_limit(small)


def test_a_record_whose_fixed_fields_exceed_the_limit_comes_back_over_it_not_never() -> None:
    message = {"type": "finding", "device": "d" * 100, "summary": "s" * 1000, "points": []}
    payload = fit(message, 50)  # only str/list values are cut; the rest cannot shrink
    assert json.loads(payload)["truncated"] is True
    assert len(payload) > 50


async def test_a_gateway_that_cannot_start_still_closes_its_analysis(tmp_path: Path) -> None:
    """The metrics port is taken: the start fails, and the analysis the factory made (its
    backlog file, its model client) is closed all the same."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = parse_config(
            {
                "spool": {"path": str(tmp_path / "spool.db")},
                "jsonl": {"path": str(tmp_path / "out.jsonl")},
                "metrics": {"port": taken.getsockname()[1]},
                "analysis": {"ollama": "http://127.0.0.1:9"},
                "devices": [
                    {"name": "d", "host": "127.0.0.1", "points": [{"name": "p", "address": 0}]}
                ],
            }
        )
        gateway = edge_gateway(config)
        pipeline = gateway.sink("analysis").pipeline  # type: ignore[attr-defined]
        with pytest.raises(UsageError, match=r"pick another \[metrics\] port"):
            async with gateway:
                pytest.fail("started although the metrics port is taken")
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        len(pipeline.backlog)


async def test_the_configs_descriptions_reach_the_analysis_prompt(tmp_path: Path) -> None:
    """`gateway check` accepts a description on devices and points; the model reads it."""
    point = {"name": "current", "address": 0, "unit": "A", "description": "rated 170 A"}
    device = {"name": "motor", "host": "127.0.0.1", "description": "conveyor drive, 75 kW"}
    config = parse_config(
        {
            "spool": {"path": str(tmp_path / "spool.db")},
            "jsonl": {"path": str(tmp_path / "out.jsonl")},
            "analysis": {"ollama": "http://127.0.0.1:9"},
            "devices": [{**device, "points": [point]}],
        }
    )
    gateway = edge_gateway(config)
    pipeline = gateway.sink("analysis").pipeline  # type: ignore[attr-defined]
    try:
        window = DeviceWindow("motor", 10.0, 5.0)
        window.add(1_700_000_000.0, {"current": 150.0})
        prompt = pipeline.prompts.window_prompt(
            window.close(), [], pipeline.analyzer.point_info("motor"), None,
            pipeline.analyzer.description("motor"),
        )  # fmt: skip
    finally:
        await pipeline.close()
    assert "About it: conveyor drive, 75 kW" in prompt
    assert "- current (A) [rated 170 A]:" in prompt


async def test_what_the_analysis_decides_at_a_stop_is_stored_and_delivered(
    tmp_path: Path, ollama: OllamaSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """At a stop the analysis judges its open window; those records used to reach the
    spool after it had closed ("analysis sink failed ...: spool is closed"): lost."""
    counter = SimPoint("holding", 0, "float32", value={"kind": "counter", "rate": 50}, name="p0")
    async with ModbusSimulator([DeviceProfile(name="tank", points=[counter])]) as sim:
        host, port = sim.address
        jsonl = tmp_path / "out.jsonl"
        config = parse_config(
            {
                "node": "test",
                "spool": {"path": str(tmp_path / "spool.db"), "commit_interval": 0.02},
                "jsonl": {"path": str(jsonl)},
                "analysis": {
                    "ollama": ollama.url,
                    "window_s": 3600.0,  # the only window is still open at the stop
                    "zscore": False,
                    "thresholds": [{"point": "level", "above": 5.0}],
                    "offline_after_s": False,
                },
                "devices": [
                    {
                        "name": "tank",
                        "host": host,
                        "port": port,
                        "interval": 0.05,
                        "points": [{"name": "level", "address": 0, "type": "float32"}],
                    }
                ],
            }
        )
        async with edge_gateway(config), asyncio.timeout(15):
            while not any(r["kind"] == "telemetry" and r["readings"][0]["value"] > 5
                          for r in lines(jsonl)):  # fmt: skip
                await asyncio.sleep(0.05)
    assert "analysis sink failed" not in caplog.text
    decided = [r for r in lines(jsonl) if r["kind"] == "finding"]
    assert {r["type"] for r in decided} >= {"trigger"}
    assert all(r["device"] == "tank" for r in decided)
