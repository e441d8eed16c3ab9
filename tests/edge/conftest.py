"""The edge tests use the analysis tests' peers: the Ollama simulator and a Mosquitto."""

from tests.analysis.conftest import mosquitto, ollama

__all__ = ["mosquitto", "ollama"]
