"""The scan tool: which of a few targets and unit ids answer Modbus, through the Modbus
core's scanner, bounded (targets, unit ids, time) and only where probing is allowed."""

from __future__ import annotations

import pytest
from mcp.client import Client

from mcptool.context import open_context, tools
from mcptool.gateway.config import GatewayConfig
from simulators.modbus import ModbusSimulator
from simulators.modbus.faults import Fault


async def scan(config: GatewayConfig, arguments: dict[str, object], **kw: object) -> object:
    async with open_context(config, **kw) as (_tools, server), Client(server) as client:  # type: ignore[arg-type]
        return await client.call_tool("scan", arguments)


async def test_a_unit_sweep_of_the_configured_device(
    config: GatewayConfig, boiler: ModbusSimulator
) -> None:
    host, port = boiler.address
    result = await scan(config, {"targets": [f"{host}:{port}"], "units": "1-3"})
    assert not result.is_error, result.content
    report = result.structured_content
    assert report["targets"] == [f"{host}:{port}"] and report["units"] == [1, 2, 3]
    assert report["complete"] is True
    by_unit = {p["unit"]: p for p in report["probes"]}
    assert set(by_unit) == {1, 2, 3}
    # the boiler is unit 1; for the others the simulator answers as a Modbus gateway whose
    # device is absent (0x0B), which is not a device answering
    assert by_unit[1]["outcome"] == "ok" and by_unit[1]["values"] is not None
    assert by_unit[2]["outcome"] == by_unit[3]["outcome"] == "exception"
    assert by_unit[2]["exception"] == "gateway target device failed to respond"
    assert report["answered"] == 1


async def test_identify_asks_the_device_who_it_is(
    config: GatewayConfig, boiler: ModbusSimulator
) -> None:
    host, port = boiler.address
    result = await scan(config, {"targets": [f"{host}:{port}"], "identify": True})
    (probe,) = result.structured_content["probes"]
    assert probe["identity"]["vendor_name"] == "Acme Heating"


@pytest.mark.parametrize(
    ("targets", "units", "says"),
    [
        (["192.0.2.10:502"], "1", "scanning 192.0.2.10 is not allowed"),
        (["plc.invalid"], "1", "scanning plc.invalid is not allowed"),
        (["10.0.0.0/30"], "1", "a range only within loopback"),
        (["127.0.0.0/24"], "1", "scan at most 16 a call"),
        (["127.0.0.1"], "1-17", "17 unit ids: scan at most 16"),
        (["127.0.0.1"], "1-x", "write a list or ranges"),
        (["rtu:///dev/ttyUSB0?baudrate=9600"], "1", "TCP targets only"),
        ([], "1", "no targets"),
    ],
)
async def test_what_it_refuses_says_how_to_call_it_right(
    config: GatewayConfig, boiler: ModbusSimulator, targets: list[str], units: str, says: str
) -> None:
    result = await scan(config, {"targets": targets, "units": units})
    assert result.is_error
    assert says in result.content[0].text
    assert boiler.counters.connections == 0  # refused before anything was sent


async def test_a_host_allowed_at_start_passes_the_check(config: GatewayConfig) -> None:
    # .invalid never resolves (RFC 6761): past the allow-list, the resolver says no, and
    # no packet leaves loopback
    result = await scan(config, {"targets": ["plc.invalid"]}, allow_probe=("plc.invalid",))
    assert result.is_error
    assert "cannot resolve host 'plc.invalid'" in result.content[0].text


async def test_the_time_bound_ends_a_scan_with_what_it_has(
    config: GatewayConfig, boiler: ModbusSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    boiler.add_fault(Fault(kind="silence"))  # every unit id costs its whole timeout
    monkeypatch.setattr(tools, "SCAN_SECONDS", 0.5)
    host, port = boiler.address
    result = await scan(config, {"targets": [f"{host}:{port}"], "units": "1-16"})
    report = result.structured_content
    assert report["complete"] is False
    assert len(report["probes"]) < 16 and report["answered"] == 0
