"""The metadata of a GGUF file: what ``/api/tags`` and ``/api/show`` say about a model.

Read from the file's header (GGUF v2/v3: magic, version, tensor count, then typed
key/value pairs), without loading the model: a file that is not GGUF is refused here
with a one-line error before llama.cpp sees it. Arrays (the tokenizer's 150k tokens)
are skipped, not kept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mcptool.errors import UsageError

_MAGIC = b"GGUF"
# value types of the GGUF spec: 0..12
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
# llama.cpp's LLAMA_FTYPE values, as Ollama names them in `quantization_level`
_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "BF16",
}


@dataclass(frozen=True, slots=True)
class GGUFInfo:
    path: Path
    size: int
    metadata: dict[str, Any]

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name") or self.path.stem)

    @property
    def quantization(self) -> str:
        file_type = self.metadata.get("general.file_type")
        return _FILE_TYPES.get(file_type, "unknown") if isinstance(file_type, int) else "unknown"

    @property
    def parameter_size(self) -> str:
        return str(self.metadata.get("general.size_label") or "unknown")

    @property
    def context_length(self) -> int:
        value = self.metadata.get(f"{self.architecture}.context_length")
        return int(value) if isinstance(value, int) else 0

    def model_info(self) -> dict[str, Any]:
        """The scalar keys, as Ollama's ``model_info`` (arrays left out)."""
        return {k: v for k, v in self.metadata.items() if not isinstance(v, list)}


def read_gguf(path: Path) -> GGUFInfo:
    """The header of the GGUF file at ``path``; a UsageError naming it if it is not one."""
    try:
        with path.open("rb") as f:
            if f.read(4) != _MAGIC:
                raise UsageError(f"{path} is not a GGUF model file: name a .gguf file")
            version, _tensors, count = struct.unpack("<IQQ", _exact(f, 20))
            if version not in (2, 3):
                raise UsageError(f"{path} is GGUF version {version}; only 2 and 3 are read")
            metadata: dict[str, Any] = {}
            for _ in range(count):
                key = _string(f)
                metadata[key] = _value(f, struct.unpack("<I", _exact(f, 4))[0])
            size = path.stat().st_size
    except FileNotFoundError:
        raise UsageError(f"model file {path} does not exist: name an existing .gguf") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory: name a .gguf file") from None
    except (EOFError, struct.error, UnicodeDecodeError, ValueError):
        raise UsageError(f"{path} is a damaged GGUF file (its header is cut short)") from None
    return GGUFInfo(path, size, metadata)


def _exact(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _string(f: IO[bytes]) -> str:
    (length,) = struct.unpack("<Q", _exact(f, 8))
    return _exact(f, length).decode("utf-8")


def _value(f: IO[bytes], kind: int) -> Any:
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, _exact(f, struct.calcsize(fmt)))[0]
    if kind == _STRING:
        return _string(f)
    if kind == _ARRAY:
        item, length = struct.unpack("<IQ", _exact(f, 12))
        if item in _SCALARS:
            f.seek(length * struct.calcsize(_SCALARS[item]), 1)
        else:
            for _ in range(length):
                _value(f, item)
        return []
    raise ValueError(f"unknown GGUF value type {kind}")
