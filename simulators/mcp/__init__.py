"""An MCP peer for link tests and demos: a hub that records what it gets, and a fault proxy.

``McpPeer`` is a :class:`mcptool.link.LinkServer` with built-in handlers and a record of
every frame delivered; ``FaultProxy`` sits in front of any peer and goes silent or cuts
connections on demand.
"""

from simulators.mcp.peer import McpPeer
from simulators.mcp.proxy import FaultProxy

__all__ = ["FaultProxy", "McpPeer"]
