"""mcptool: a toolkit for Modbus/MCP protocol work and edge connectivity.

Sub-packages, one job each:

- ``mcptool.frame``: the MCP wire format (construct spec, codec, stream decoder, envelope)
- ``mcptool.link``: the authenticated, heartbeat-managed MCP session
- ``mcptool.modbus``: probe, scan, register maps and data types, poller
- ``mcptool.ollama``: async client for a local Ollama server
- ``mcptool.analysis``: windowed statistics, triggers, prompts, findings
- ``mcptool.gateway``: config, gateway, spool, sinks (and their registry), metrics
- ``mcptool.edge``: the composition of gateway and analysis (the whole config, wiring)
"""

__version__ = "0.1.0"

from mcptool.errors import McptoolError

__all__ = ["McptoolError", "__version__"]
