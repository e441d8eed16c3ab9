"""The context server through the official SDK's client, over streamable HTTP (in this
process, the gateway polling a simulated boiler) and stdio (`mcptool context serve` as a
child process, reading the boiler directly): every tool answers with typed, structured
content; writes outside the config's permission or bounds are refused and never reach
the device; HTTP without the bearer token is refused."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcptool.context import open_context, serve_http
from mcptool.context.server import TOOLS
from mcptool.edge import edge_gateway, parse_config
from mcptool.errors import UsageError
from mcptool.gateway.config import GatewayConfig
from simulators.modbus import ModbusSimulator
from simulators.ollama import OllamaSimulator
from tests.context.conftest import plant, toml

TOKEN = "s3cret-token"
WRITES = (0x05, 0x06, 0x0F, 0x10)


def writes(sim: ModbusSimulator) -> int:
    return sum(sim.counters.total(function=code) for code in WRITES)


async def until(condition: Any, what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.02)


@pytest.fixture
async def http_url(config: GatewayConfig, tmp_path: Path) -> AsyncIterator[str]:
    """The context server over streamable HTTP with the gateway in this process."""
    async with open_context(config, gateway=True, audit_path=tmp_path / "audit.jsonl") as (
        _tools,
        server,
    ):
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve_http(server, "127.0.0.1", 0, TOKEN, on_ready=ready.set_result)
        )
        port = await asyncio.wait_for(ready, 10)
        try:
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def authorised(url: str) -> Any:
    return streamable_http_client(
        url, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
    )


async def test_every_tool_answers_with_typed_results_over_http(
    http_url: str, boiler: ModbusSimulator, tmp_path: Path
) -> None:
    async with Client(authorised(http_url)) as client:
        listed = (await client.list_tools()).tools
        assert [t.name for t in listed] == [name for name, _ in TOOLS]
        for tool in listed:  # every result has a schema, so clients can check it
            assert tool.output_schema is not None, tool.name

        plant_ = await client.call_tool("list_devices", {})
        assert not plant_.is_error
        boiler_ = plant_.structured_content["devices"][0]
        points = {p["name"]: p for p in boiler_["points"]}
        assert points["supply_temperature"]["unit"] == "°C"
        assert points["supply_temperature"]["type"] == "float32"
        assert points["supply_temperature"]["description"] == "water leaving the boiler"
        assert points["setpoint"]["writable"] and points["setpoint"]["max"] == 80
        assert not points["water_pressure"]["writable"]

        async def polled() -> bool:
            result = await client.call_tool("read_values", {"device": "boiler"})
            return not result.is_error

        await until(polled, "the first poll")
        values = await client.call_tool(
            "read_values", {"device": "boiler", "points": ["supply_temperature", "run_hours"]}
        )
        content = values.structured_content
        assert content["source"] == "gateway" and content["device"] == "boiler"
        got = content["values"]
        assert set(got) == {"supply_temperature", "run_hours"}
        assert content["units"] == {"supply_temperature": "°C"} and content["errors"] == {}
        assert isinstance(got["supply_temperature"], float)
        assert 60 < got["supply_temperature"] < 85
        assert isinstance(got["run_hours"], int)

        async def recorded() -> bool:
            result = await client.call_tool(
                "read_history", {"device": "boiler", "point": "water_pressure", "limit": 5}
            )
            return bool(result.structured_content["truncated"])

        await until(recorded, "more than five polls in the spool")
        history = await client.call_tool(
            "read_history", {"device": "boiler", "point": "water_pressure", "limit": 5}
        )
        content = history.structured_content
        assert content["unit"] == "bar" and content["truncated"] is True
        times = [s["ts"] for s in content["samples"]]
        assert times == sorted(times) and all(1.2 <= s["value"] <= 2.4 for s in content["samples"])

        findings = await client.call_tool("list_findings", {"device": "boiler"})
        assert findings.structured_content == {"records": [], "truncated": False}

        host, port = boiler.address
        probe = await client.call_tool("probe", {"host": host, "port": port})
        assert probe.structured_content["outcome"] == "ok"
        assert probe.structured_content["answered"] is True

        diagnosis = await client.call_tool("explain_offline", {"device": "boiler"})
        assert diagnosis.structured_content["online"] is True
        assert diagnosis.structured_content["gateway_status"]["status"] == "online"

        before = writes(boiler)
        written = await client.call_tool(
            "write_point", {"device": "boiler", "point": "setpoint", "value": 65.5}
        )
        assert not written.is_error, written.content
        assert written.structured_content["function"] == 0x10
        assert boiler.value("setpoint") == 65.5
        assert writes(boiler) == before + 1

        resource = await client.read_resource("plant://description")
        assert json.loads(resource.contents[0].text)["devices"][0]["name"] == "boiler"
        prompts = [p.name for p in (await client.list_prompts()).prompts]
        assert prompts == ["diagnose_device", "summarise_last_hour"]
        prompt = await client.get_prompt("diagnose_device", {"device": "boiler"})
        assert "boiler" in prompt.messages[0].content.text

    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["point"], a["value"], a["result"]) for a in audit] == [("setpoint", 65.5, "written")]


async def test_writes_outside_the_config_are_refused_and_never_sent(
    http_url: str, boiler: ModbusSimulator, tmp_path: Path
) -> None:
    setpoint = boiler.value("setpoint")
    pressure = boiler.value("water_pressure")
    before = writes(boiler)
    asks = [
        ({"device": "boiler", "point": "water_pressure", "value": 2.0}, "is not writable"),
        ({"device": "boiler", "point": "setpoint", "value": 95}, "out of bounds"),
        ({"device": "boiler", "point": "setpoint", "value": 39.9}, "out of bounds"),
        ({"device": "boiler", "point": "run_hours", "value": 0}, "is not writable"),
        ({"device": "chiller", "point": "setpoint", "value": 50}, 'unknown device "chiller"'),
    ]
    async with Client(authorised(http_url)) as client:
        for arguments, reason in asks:
            result = await client.call_tool("write_point", arguments)
            assert result.is_error, arguments
            assert reason in result.content[0].text, result.content[0].text
        # arguments of the wrong type are the SDK's validation error, also a tool error
        bad = await client.call_tool("write_point", {"device": "boiler", "point": "setpoint"})
        assert bad.is_error
    assert writes(boiler) == before
    assert boiler.value("setpoint") == setpoint
    assert boiler.value("water_pressure") != 2.0 or pressure == 2.0
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [a["result"] for a in audit] == ["refused"] * len(asks)


async def test_http_without_the_token_is_refused(http_url: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = await http.post(http_url, json=body, headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_serving_beyond_loopback_needs_a_token() -> None:
    from mcptool.context import check_http

    with pytest.raises(UsageError, match="needs a bearer token"):
        check_http("0.0.0.0", None)
    check_http("127.0.0.1", None)
    check_http("::1", None)
    check_http("0.0.0.0", TOKEN)


async def test_stdio_with_direct_reads(boiler: ModbusSimulator, tmp_path: Path) -> None:
    """`mcptool context serve` as a desktop agent starts it: reading the device itself."""
    path = tmp_path / "plant.toml"
    path.write_text(toml(plant(boiler, tmp_path)))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcptool", "context", "serve", "--config", str(path)],
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    async with Client(params) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert names == [name for name, _ in TOOLS]
        values = await client.call_tool("read_values", {"device": "boiler"})
        assert values.structured_content["source"] == "direct"
        assert values.structured_content["values"]["setpoint"] == boiler.value("setpoint")
        missing = await client.call_tool("read_history", {"device": "boiler", "point": "setpoint"})
        assert missing.is_error and "no spool at" in missing.content[0].text
        refused = await client.call_tool("probe", {"host": "192.0.2.1"})
        assert refused.is_error and "not allowed" in refused.content[0].text


async def test_stdio_with_the_gateway_in_the_server_process(
    boiler: ModbusSimulator, tmp_path: Path
) -> None:
    """`mcptool context serve --gateway` over stdio: every tool, and the write rules."""
    path = tmp_path / "plant.toml"
    path.write_text(toml(plant(boiler, tmp_path)))
    audit = tmp_path / "audit.jsonl"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcptool", "context", "serve", "--config", str(path), "--gateway",
              "--audit", str(audit)],
        cwd=str(Path(__file__).resolve().parents[2]),
    )  # fmt: skip
    host, port = boiler.address
    async with Client(params) as client:

        async def recorded() -> bool:
            history = await client.call_tool(
                "read_history", {"device": "boiler", "point": "supply_temperature", "limit": 2}
            )
            return not history.is_error and len(history.structured_content["samples"]) == 2

        await until(recorded, "two polls in the child's spool", timeout=20)
        calls = {
            "list_devices": {},
            "read_values": {"device": "boiler"},
            "read_history": {"device": "boiler", "point": "supply_temperature"},
            "list_findings": {},
            "probe": {"host": host, "port": port},
            "scan": {"targets": [f"{host}:{port}"], "units": "1-2"},
            "explain_offline": {"device": "boiler"},
            "write_point": {"device": "boiler", "point": "setpoint", "value": 44},
        }
        assert list(calls) == [name for name, _ in TOOLS]
        for name, arguments in calls.items():
            result = await client.call_tool(name, arguments)
            assert not result.is_error, (name, result.content)
            assert isinstance(result.structured_content, dict), name
        assert boiler.value("setpoint") == 44.0
        before = writes(boiler)
        for value, point in ((81, "setpoint"), (1.5, "water_pressure")):
            refused = await client.call_tool(
                "write_point", {"device": "boiler", "point": point, "value": value}
            )
            assert refused.is_error
        assert writes(boiler) == before
    results = [json.loads(line)["result"] for line in audit.read_text().splitlines()]
    assert results == ["written", "refused", "refused"]


async def test_the_analysis_findings_reach_list_findings_and_the_resource(
    boiler: ModbusSimulator, tmp_path: Path
) -> None:
    """A gateway with [analysis] (the Ollama simulator as its model): its triggers and
    findings go through the spool to the tools, newest first."""
    async with OllamaSimulator(models=["llama3.2"]) as model:
        data = plant(boiler, tmp_path)
        data["analysis"] = {
            "ollama": model.url,
            "model": "llama3.2",
            "window_s": 0.5,
            "every_window": True,
            "min_call_interval_s": 0,
            "cooldown_s": 0,
            "queue_path": str(tmp_path / "backlog.db"),
        }
        config = parse_config(data, base_dir=tmp_path)
        async with (
            open_context(config, gateway=True) as (_tools, server),
            Client(server) as client,  # in process: the same server object
        ):

            async def found() -> bool:
                result = await client.call_tool("list_findings", {"device": "boiler"})
                kinds = {r.get("type") for r in result.structured_content["records"]}
                return "finding" in kinds

            await until(found, "a finding of the boiler", timeout=30)
            result = await client.call_tool("list_findings", {"limit": 100})
            records = result.structured_content["records"]
            findings = [r for r in records if r["type"] == "finding"]
            assert findings[0]["device"] == "boiler"
            assert findings[0]["severity"] in ("normal", "warning", "critical")
            assert [r["window"]["start"] for r in findings] == sorted(
                (r["window"]["start"] for r in findings), reverse=True
            )
            latest = await client.read_resource("plant://findings/latest")
            assert json.loads(latest.contents[0].text)["records"]


async def test_a_running_gateway_is_served_as_it_is(config: GatewayConfig) -> None:
    """The demo's way: its gateway already runs; the context reads it, starts no other."""
    async with edge_gateway(config) as gw, open_context(config, gateway=gw) as (tools, server):
        async with Client(server) as client:

            async def polled() -> bool:
                return not (await client.call_tool("read_values", {"device": "boiler"})).is_error

            await until(polled, "the first poll")
            values = await client.call_tool("read_values", {"device": "boiler"})
            current = gw.current.get("boiler", "setpoint")
            assert current is not None
            assert values.structured_content["values"]["setpoint"] == current.value
        assert tools.gateway_status is not None
