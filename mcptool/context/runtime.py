"""Running the context server: the plant's tools over a running gateway or direct reads,
and the two transports (stdio, streamable HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from mcp.server.mcpserver import MCPServer

from mcptool.context.server import BearerAuth, build_server, check_http
from mcptool.context.tools import PlantTools
from mcptool.context.values import DirectReads, GatewayValues, ValueSource
from mcptool.context.writes import Writer
from mcptool.edge import edge_gateway
from mcptool.gateway import Gateway
from mcptool.gateway.config import GatewayConfig

__all__ = ["open_context", "serve_http", "serve_stdio"]


@contextlib.asynccontextmanager
async def open_context(
    config: GatewayConfig,
    *,
    gateway: bool | Gateway = False,
    allow_probe: tuple[str, ...] = (),
    audit_path: Path | None = None,
) -> AsyncIterator[tuple[PlantTools, MCPServer]]:
    """The plant's tools and their server. ``gateway=True`` runs the config's gateway in
    this process (polling, spool, sinks, analysis) and serves its current values; a
    running ``Gateway`` (the demo's) is served as it is, its caller stopping it;
    otherwise values are read from the devices per call and history from the spool file
    of a gateway running elsewhere."""
    audit = _audit_file(audit_path) if audit_path is not None else None
    writer = Writer(config, audit=audit)
    async with contextlib.AsyncExitStack() as stack:
        values: ValueSource
        status = None
        if isinstance(gateway, Gateway):
            values, status = GatewayValues(gateway), gateway.status
        elif gateway:
            gw = await stack.enter_async_context(edge_gateway(config))
            values, status = GatewayValues(gw), gw.status
        else:
            values = DirectReads()
        tools = PlantTools(
            config, values, writer=writer, gateway_status=status, allow_probe=allow_probe
        )
        yield tools, build_server(tools)


def _audit_file(path: Path) -> Callable[[dict[str, object]], None]:
    def append(entry: dict[str, object]) -> None:
        with path.open("a", encoding="utf-8") as out:  # one line a write, flushed at once
            out.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")

    return append


async def serve_stdio(server: MCPServer) -> None:
    await server.run_stdio_async()


async def serve_http(
    server: MCPServer,
    host: str,
    port: int,
    token: str | None,
    *,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve streamable HTTP at ``http://host:port/mcp`` until cancelled."""
    import uvicorn

    check_http(host, token)
    app = server.streamable_http_app(host=host, stateless_http=False)
    asgi = BearerAuth(app, token) if token else app
    config = uvicorn.Config(asgi, host=host, port=port, log_level="warning", lifespan="on")
    web = uvicorn.Server(config)
    web.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.create_task(web.serve(), name="context server")
    try:
        while not web.started:  # uvicorn has no event for it
            if serving.done():
                await serving  # it failed to start (a port in use): raise its error
                return
            await asyncio.sleep(0.01)
        if on_ready is not None:
            on_ready(web.servers[0].sockets[0].getsockname()[1])
        await asyncio.shield(serving)
    finally:
        # a stop (Ctrl-C, a cancelled task): let uvicorn close its sessions and lifespan
        # in order instead of cancelling it in the middle
        web.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
