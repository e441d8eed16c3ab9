"""``mcptool simulate``: run simulated Modbus devices, Ollama, an MCP peer until interrupted."""

from __future__ import annotations

import click

from mcptool.cli import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy={
        "modbus": "mcptool.commands.simulate_modbus:modbus",
        "ollama": "mcptool.commands.simulate_ollama:ollama",
        "mcp": "mcptool.commands.simulate_mcp:mcp",
    },
)
def simulate() -> None:
    """Run simulated Modbus devices, an Ollama server or an MCP peer on loopback."""
