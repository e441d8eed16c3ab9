"""``mcptool ask``: a local agent loop over the plant's tools and an Ollama model.

The model gets the context server's tools (their names, descriptions and input schemas,
as Ollama's ``tools`` in ``/api/chat``), asks for calls (``message.tool_calls``), and
the loop runs each one through the same ``MCPServer`` that ``context serve`` exposes, in
process, so the checks (writable points, bounds, probe targets, history limits) are the
same. A call the server refuses (an unknown tool, bad arguments, a point not writable)
goes back to the model as the tool's error text, which it may correct. The loop ends
with the model's answer, or after ``max_steps`` rounds of calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

from mcptool.ollama import OllamaClient

__all__ = ["OPTIONS", "Answer", "ToolCall", "ask", "tool_specs"]

SYSTEM = (
    "You answer questions about an industrial plant. Use the tools to read the plant's"
    " devices, current values, history and findings; never guess a value. Quote the"
    " values you use with their units. Answer briefly."
)


OPTIONS: dict[str, Any] = {"temperature": 0, "seed": 42}
"""The model options of every round unless the caller gives its own: repeatable answers."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    result: str  # the JSON (or error text) the model was given
    error: bool


@dataclass(slots=True)
class Answer:
    text: str
    calls: list[ToolCall] = field(default_factory=list)
    steps: int = 0
    stopped: str = ""  # why the loop ended without an answer (step limit)


async def tool_specs(server: MCPServer) -> list[dict[str, Any]]:
    """The server's tools in Ollama's ``tools`` shape."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description or "",
                "parameters": tool.input_schema,
            },
        }
        for tool in await server.list_tools()
    ]


async def run_tool(server: MCPServer, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
    """The text the model gets for one call, and whether it is an error."""
    try:
        result = await server.call_tool(name, arguments)
    except ToolError as exc:  # an unknown tool, arguments that do not validate, a refusal
        return _error(name, str(exc)), True
    if not isinstance(result, CallToolResult):  # the SDK asks for input: nobody to ask here
        return "error: the tool asked for input, which this loop cannot give", True
    if result.is_error or result.structured_content is None:
        text = " ".join(getattr(block, "text", "") for block in result.content)
        return (_error(name, text), True) if result.is_error else (text, False)
    return json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":")), False


async def ask(
    question: str,
    server: MCPServer,
    client: OllamaClient,
    model: str,
    *,
    max_steps: int = 6,
    options: dict[str, Any] | None = None,
) -> Answer:
    """Ask ``model`` ``question`` with the server's tools; run the calls it asks for."""
    tools = await tool_specs(server)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
    ]
    answer = Answer(text="")
    for step in range(1, max_steps + 1):
        answer.steps = step
        result = await client.chat(
            model,
            messages,
            tools=tools,
            stream=False,
            options=options or OPTIONS,
        )
        if not result.tool_calls:
            answer.text = result.text.strip()
            if not answer.text:  # a small model may end its turn with nothing at all
                answer.stopped = "the model answered with neither text nor a tool call"
            return answer
        messages.append(
            {"role": "assistant", "content": result.text, "tool_calls": result.tool_calls}
        )
        for call in result.tool_calls:
            function = call.get("function") or {}
            name = str(function.get("name", ""))
            arguments = function.get("arguments") or {}
            if isinstance(arguments, str):  # some models send the arguments as JSON text
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    arguments = {"_unparsed": arguments}
            if not isinstance(arguments, dict):
                arguments = {"_unparsed": arguments}
            text, error = await run_tool(server, name, arguments)
            answer.calls.append(ToolCall(name, arguments, text, error))
            messages.append({"role": "tool", "tool_name": name, "content": text})
    answer.stopped = f"no answer after {max_steps} steps of tool calls (--max-steps)"
    return answer


def _error(name: str, text: str) -> str:
    # the SDK words a tool's own error "Error executing tool NAME: ...": one prefix is enough
    return f"error: {text.removeprefix(f'Error executing tool {name}: ')}"
