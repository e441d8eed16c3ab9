"""The files a gateway run will open, checked before it starts: ``gateway check`` promises
that ``gateway run`` will not fail on a path.

The config models check what a value looks like; this checks what the file system says
about it, leaving nothing behind: the spool and the files each sink declares it writes
(``SinkType.files``: a JSON Lines file, the analysis backlog) need a directory that
exists or can be made, and that this user may write in; the files it reads (certificate
and key files) must be readable files. Each problem names the
config key, the path and the fix, like every other config problem.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mcptool.gateway.config import GatewayConfig, Problem

__all__ = ["path_problems"]


def path_problems(config: GatewayConfig) -> list[Problem]:
    """Every path of ``config`` that ``gateway run`` could not open, one problem each."""
    base = config.base_dir
    problems: list[Problem] = []

    def writable(key: str, path: str | os.PathLike[str]) -> None:
        problem = _writable_file(base / path)
        if problem:
            problems.append(Problem(key, problem))

    def readable(key: str, path: str | os.PathLike[str] | None) -> None:
        if path is None:
            return
        problem = _readable_file(base / path)
        if problem:
            problems.append(Problem(key, problem))

    writable("spool.path", config.spool.path)
    for sink, settings in config.enabled_sinks():
        for key, path, written in sink.files(settings):
            if written:
                writable(f"{sink.name}.{key}", path)
            else:
                readable(f"{sink.name}.{key}", path)
    return problems


def _writable_file(path: Path) -> str | None:
    """Why a file at ``path`` could not be created or written, or None."""
    if "\0" in str(path):  # TOML can spell one ("\u0000"); no file system takes it
        return f"{str(path)!r} has a NUL character: no file can be named so"
    if path.is_dir():
        return f"{path} is a directory: name a file in it"
    if path.exists():
        if not os.access(path, os.W_OK):
            return f"{path} is not writable by this user: fix its permissions or pick another"
        return None
    # the run creates missing directories: the nearest existing one decides
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory: cannot create {path} under it"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {path}: {parent} is not writable by this user"
    # Mode bits do not tell the whole story (root, read-only mounts, /proc): try it, with
    # a probe that is removed at once
    try:
        probe = tempfile.mkdtemp(prefix=".mcptool-check-", dir=parent)
    except OSError as exc:
        return f"cannot create {path}: {parent} takes no new files ({exc.strerror})"
    os.rmdir(probe)
    return None


def _readable_file(path: Path) -> str | None:
    if "\0" in str(path):
        return f"{str(path)!r} has a NUL character: no file can be named so"
    if not path.exists():
        return f"{path} does not exist: give the path of the file (relative to the config)"
    if not path.is_file():
        return f"{path} is not a file"
    if not os.access(path, os.R_OK):
        return f"{path} is not readable by this user: fix its permissions"
    return None
