"""The simulated models: names as Ollama spells them, and the details it reports."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mcptool.serving.wire import full_name

_FAMILIES = (
    # (name prefix, family, parameter size, bytes on disk, embedding length, embeds only)
    ("llama3.2", "llama", "3.2B", 2_019_393_189, 3072, False),
    ("llama3.1", "llama", "8.0B", 4_920_753_328, 4096, False),
    ("llama3", "llama", "8.0B", 4_661_224_676, 4096, False),
    ("qwen2.5", "qwen2", "7.6B", 4_683_087_332, 3584, False),
    ("qwen3", "qwen3", "8.2B", 5_225_388_164, 4096, False),
    ("gemma3", "gemma3", "4.3B", 3_338_801_804, 2560, False),
    ("phi3", "phi3", "3.8B", 2_176_178_913, 3072, False),
    ("mistral", "llama", "7.2B", 4_113_301_824, 4096, False),
    ("nomic-embed-text", "nomic-bert", "137M", 274_302_450, 768, True),
    ("all-minilm", "bert", "23M", 45_960_996, 384, True),
)


def canonical(name: str) -> str:
    """``llama3.2`` and ``llama3.2:latest`` are the same model to Ollama."""
    return full_name(name)


@dataclass(frozen=True, slots=True)
class SimModel:
    name: str
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    size: int = 2_019_393_189
    context_length: int = 4096
    embedding_length: int = 3072
    embedding_only: bool = False

    @classmethod
    def named(cls, name: str) -> SimModel:
        full = canonical(name)
        base = full.rsplit(":", 1)[0].rsplit("/", 1)[-1]
        for prefix, family, params, size, dim, embeds in _FAMILIES:
            if base.startswith(prefix):
                return cls(
                    full,
                    family,
                    params,
                    "Q4_K_M" if not embeds else "F16",
                    size,
                    8192 if embeds else 131072,
                    dim,
                    embeds,
                )
        return cls(full)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    @property
    def capabilities(self) -> list[str]:
        return ["embedding"] if self.embedding_only else ["completion", "tools"]

    def details(self) -> dict[str, object]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }
