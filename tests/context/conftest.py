"""A plant for the context server's tests: a simulated boiler on an ephemeral loopback
port, its config with described and writable points, and the gateway's spool."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mcptool.edge import parse_config
from mcptool.gateway.config import GatewayConfig
from simulators.modbus import ModbusSimulator
from simulators.modbus.profile import load_profile


@pytest.fixture
async def boiler() -> AsyncIterator[ModbusSimulator]:
    async with ModbusSimulator([load_profile("boiler")]) as sim:
        yield sim


def plant(sim: ModbusSimulator, tmp_path: Path) -> dict[str, Any]:
    """The boiler's config: telemetry to a JSON Lines file, and the spool keeping an hour
    of delivered records (the history and findings the context server reads)."""
    host, port = sim.address
    return {
        "node": "plant-1",
        "spool": {"path": str(tmp_path / "spool.db"), "keep": 3600},
        "jsonl": {"path": str(tmp_path / "telemetry.jsonl")},
        "devices": [
            {
                "name": "boiler",
                "host": host,
                "port": port,
                "interval": 0.05,
                "points": [
                    {"name": "supply_temperature", "address": 0, "type": "float32",
                     "unit": "°C", "description": "water leaving the boiler"},
                    {"name": "water_pressure", "address": 4, "type": "float32", "unit": "bar"},
                    {"name": "setpoint", "address": 8, "type": "float32", "unit": "°C",
                     "writable": True, "min": 40, "max": 80},
                    {"name": "run_hours", "table": "input", "address": 0, "type": "uint32"},
                ],
            }
        ],
    }  # fmt: skip


def toml(data: dict[str, Any]) -> str:
    """The test plant as TOML (tomllib reads, it does not write)."""
    lines = [f'node = "{data["node"]}"', "[spool]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in data["spool"].items()]
    for sink in ("jsonl", "mqtt"):
        if sink in data:
            lines += [f"[{sink}]", *(f"{k} = {json.dumps(v)}" for k, v in data[sink].items())]
    for device in data["devices"]:
        lines.append("[[devices]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in device.items() if k != "points"]
        for point in device["points"]:
            lines.append("[[devices.points]]")
            lines += [
                f"{k} = {'true' if v is True else json.dumps(v, ensure_ascii=False)}"
                for k, v in point.items()
            ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def config(boiler: ModbusSimulator, tmp_path: Path) -> GatewayConfig:
    return parse_config(plant(boiler, tmp_path), base_dir=tmp_path)
