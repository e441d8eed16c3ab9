"""The example configs ship with the package, are listed by name and are valid configs."""

from __future__ import annotations

from pathlib import Path

import pytest

import mcptool.gateway.examples
from mcptool.errors import UsageError
from mcptool.gateway import example_config, example_names
from mcptool.gateway.config import load_config

EXAMPLES = Path(mcptool.gateway.examples.__file__).parent


def test_every_shipped_example_is_listed() -> None:
    assert example_names() == tuple(sorted(p.stem for p in EXAMPLES.glob("*.toml")))
    assert {"plant", "many-meters"} <= set(example_names())


@pytest.mark.parametrize("name", ["plant", "many-meters"])
def test_the_example_configs_are_valid(name: str, tmp_path: Path) -> None:
    saved = tmp_path / f"{name}.toml"
    saved.write_text(example_config(name), encoding="utf-8")
    assert load_config(saved).devices
    assert example_config(f"{name}.toml") == example_config(name)


@pytest.mark.parametrize("name", ["nope", "../config", "examples/plant"])
def test_an_unknown_example_names_the_ones_there_are(name: str) -> None:
    with pytest.raises(UsageError, match=r"no example config .*; the examples: many-meters, plant"):
        example_config(name)
