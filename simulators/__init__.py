"""Simulated peers for tests, benchmarks and demos: Modbus devices, an Ollama server, an MCP peer.

Everything here starts in-process on an ephemeral loopback port, or from
``mcptool simulate ...``.
"""
