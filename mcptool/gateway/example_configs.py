"""The example gateway configs shipped with mcptool, by name (``plant``, ``many-meters``).

They are package data (``mcptool/gateway/examples/``) read with ``importlib.resources``, so
``mcptool gateway example plant > plant.toml`` works from a wheel, where no source
checkout is around to point at.
"""

from __future__ import annotations

from importlib import resources

from mcptool.errors import UsageError

__all__ = ["example_config", "example_names"]

_PACKAGE = "mcptool.gateway.examples"


def example_names() -> tuple[str, ...]:
    """The names of the shipped examples, sorted."""
    entries = resources.files(_PACKAGE).iterdir()
    return tuple(sorted(e.name.removesuffix(".toml") for e in entries if e.name.endswith(".toml")))


def example_config(name: str) -> str:
    """The TOML text of example ``name`` (``plant`` or ``plant.toml``)."""
    stem = name.removesuffix(".toml")
    names = example_names()
    if stem not in names:  # asked before the file system: a name is never a path
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise UsageError(f"no example config {shown!r}; the examples: {', '.join(names)}")
    return (resources.files(_PACKAGE) / f"{stem}.toml").read_text(encoding="utf-8")
