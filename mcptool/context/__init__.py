"""The context server: the plant as tools, resources and prompts for LLM agents over the
Model Context Protocol (``mcptool context serve``), and a local agent loop over the same
tools (``mcptool ask``). Not MCP: in this project MCP is the link's Modular
Communication Protocol. See docs/CONTEXT.md."""

from mcptool.context.plant import PlantDescription, describe
from mcptool.context.runtime import open_context, serve_http, serve_stdio
from mcptool.context.server import TOOLS, build_server, check_http
from mcptool.context.tools import PlantTools, ToolProblem
from mcptool.context.writes import Refused, Writer

__all__ = [
    "TOOLS",
    "PlantDescription",
    "PlantTools",
    "Refused",
    "ToolProblem",
    "Writer",
    "build_server",
    "check_http",
    "describe",
    "open_context",
    "serve_http",
    "serve_stdio",
]
