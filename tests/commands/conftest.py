"""Fixtures of the command tests: the analysis area's real broker and Ollama simulator."""

from tests.analysis.conftest import mosquitto, ollama

__all__ = ["mosquitto", "ollama"]
