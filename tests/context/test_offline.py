"""explain_offline: the probe's outcome classes, each with what to check."""

from __future__ import annotations

import socket
from pathlib import Path

from mcp.client import Client

from mcptool.context import open_context
from mcptool.edge import parse_config
from simulators.modbus import ModbusSimulator
from simulators.modbus.faults import Fault
from tests.context.conftest import plant


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


async def diagnose(data: dict, tmp_path: Path) -> dict:  # type: ignore[type-arg]
    config = parse_config(data, base_dir=tmp_path)
    async with open_context(config) as (_tools, server), Client(server) as client:
        result = await client.call_tool("explain_offline", {"device": "boiler"})
        values = await client.call_tool("read_values", {"device": "boiler"})
    assert not result.is_error
    if values.is_error:  # no point has a value: a tool error that says where to look
        return {**result.structured_content, "values_error": values.content[0].text}
    return {**result.structured_content, "values": values.structured_content}


async def test_nothing_listening_is_refused_with_what_to_check(
    boiler: ModbusSimulator, tmp_path: Path
) -> None:
    data = plant(boiler, tmp_path)
    data["devices"][0]["port"] = closed_port()
    found = await diagnose(data, tmp_path)
    assert (found["online"], found["outcome"]) == (False, "refused")
    assert "nothing listens" in found["explanation"] and "port" in found["fix"]
    # the direct read says the same as a tool error (no point has a value), and where an
    # agent finds the last known values instead
    assert "boiler gave no current value (connection refused" in found["values_error"]
    assert "read_history" in found["values_error"]


async def test_a_silent_device_is_a_timeout(boiler: ModbusSimulator, tmp_path: Path) -> None:
    boiler.add_fault(Fault(kind="silence"))
    data = plant(boiler, tmp_path)
    data["devices"][0]["timeout"] = 0.2
    found = await diagnose(data, tmp_path)
    assert (found["online"], found["outcome"]) == (False, "timeout")
    assert "unit id" in found["fix"]


async def test_a_device_that_answers_is_online(boiler: ModbusSimulator, tmp_path: Path) -> None:
    found = await diagnose(plant(boiler, tmp_path), tmp_path)
    assert (found["online"], found["outcome"]) == (True, "ok")
    assert found["gateway_status"] is None  # no gateway in this process
