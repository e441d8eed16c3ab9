"""The context server: the plant's tools, resources and prompts over the Model Context
Protocol (the official SDK's ``MCPServer``), on stdio or streamable HTTP.

Not to be confused with MCP, the link's Modular Communication Protocol: this module
speaks the Model Context Protocol, by which LLM agents call tools.

Over HTTP every request must carry ``Authorization: Bearer <token>`` (compared in
constant time) unless the server is bound to loopback without a token; a non-loopback
bind without a token is refused before the socket opens (``check_http``).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from mcptool.context.tools import PlantTools
from mcptool.errors import UsageError

__all__ = ["TOOLS", "BearerAuth", "build_server", "check_http"]

INSTRUCTIONS = (
    "Tools for one industrial plant polled by an mcptool edge gateway: named, typed points"
    " with units (never raw register addresses). Start with list_devices. Values come from"
    " the gateway's latest poll; history and findings from its spool. Only points the"
    " plant's config marks writable can be written, within their min and max."
)

# (method of PlantTools, read-only?): the tools, in the order an agent meets them
TOOLS: tuple[tuple[str, bool], ...] = (
    ("list_devices", True),
    ("read_values", True),
    ("read_history", True),
    ("list_findings", True),
    ("probe", True),
    ("scan", True),
    ("explain_offline", True),
    ("write_point", False),
)


def build_server(tools: PlantTools, *, name: str = "mcptool-context") -> MCPServer:
    """An ``MCPServer`` with the plant's tools, resources and prompts."""
    server: MCPServer = MCPServer(name, instructions=INSTRUCTIONS, log_level="WARNING")
    for method, read_only in TOOLS:
        server.add_tool(
            getattr(tools, method),
            name=method,
            annotations=ToolAnnotations(
                read_only_hint=read_only,
                destructive_hint=not read_only,
                open_world_hint=False,
            ),
            structured_output=True,
        )

    @server.resource(
        "plant://description",
        name="plant",
        description="devices, points, units, types and write permissions",
        mime_type="application/json",
    )
    async def plant() -> str:
        return (await tools.list_devices()).model_dump_json(indent=1)

    @server.resource(
        "plant://findings/latest",
        name="latest-findings",
        description="the analysis's findings and triggers of the last hour, newest first",
        mime_type="application/json",
    )
    async def latest_findings() -> str:
        findings = await tools.list_findings(minutes=60.0, limit=20)
        return json.dumps(findings.model_dump(), ensure_ascii=False)

    @server.prompt(name="diagnose_device", description="diagnose one device of the plant")
    def diagnose(device: str) -> str:
        tools.device(device)
        return (
            f"Diagnose the device {device}. Call read_values for its current values,"
            f" list_findings for what the analysis saw, read_history for any point that"
            f" looks wrong, and explain_offline if values are bad. Say what is wrong, why"
            f" you think so (quote values with units and times), and what to check first."
        )

    @server.prompt(name="summarise_last_hour", description="summarise the plant's last hour")
    def summarise() -> str:
        return (
            "Summarise the last hour of the plant: call list_devices, then list_findings"
            " (minutes 60) and read_values for each device. Report devices offline, findings"
            " by severity, and values outside their usual range, quoting values with units."
        )

    return server


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_http(host: str, token: str | None) -> None:
    """Refuse to serve a non-loopback address without a bearer token."""
    if not token and not is_loopback(host):
        raise UsageError(
            f"--http {host}: serving beyond loopback needs a bearer token:"
            " set MCPTOOL_CONTEXT_TOKEN (or --token-file) or bind 127.0.0.1"
        )


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BearerAuth:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer <token>``."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = b'{"error":"unauthorized: send Authorization: Bearer <token>"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b'Bearer realm="mcptool-context"'),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
