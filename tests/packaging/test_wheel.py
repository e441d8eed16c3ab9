"""The wheel carries every file the packages read at run time, and nothing of the checkout
around them (tests, fixtures)."""

from __future__ import annotations

import subprocess

import pytest

from tests.packaging.conftest import ROOT

BUNDLED = [
    "simulators/modbus/profiles/boiler.toml",
    "simulators/modbus/profiles/boiler_drift.toml",
    "simulators/modbus/profiles/digital_io.toml",
    "simulators/modbus/profiles/gateway.toml",
    "simulators/modbus/profiles/power_meter.toml",
    "mcptool/analysis/prompts/system.txt",
    "mcptool/analysis/prompts/window.txt",
    "mcptool/analysis/prompts/repair.txt",
    "mcptool/gateway/examples/plant.toml",
    "mcptool/gateway/examples/many-meters.toml",
]


@pytest.mark.parametrize("name", BUNDLED)
def test_the_wheel_carries_the_bundled_file(name: str, wheel_names: set[str]) -> None:
    assert name in wheel_names


def _tracked_data_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", "mcptool", "simulators"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(name for name in listed.split("\0") if name and not name.endswith(".py"))


def test_every_data_file_of_the_packages_is_in_the_wheel(wheel_names: set[str]) -> None:
    """A data file added later is shipped too: a folder without __init__.py or a suffix
    missing from [tool.setuptools.package-data] would leave it behind."""
    data = _tracked_data_files()
    assert set(BUNDLED) <= set(data)
    missing = [name for name in data if name not in wheel_names]
    assert not missing, f"in the source but not in the wheel: {missing}"


def test_every_module_of_the_packages_is_in_the_wheel(wheel_names: set[str]) -> None:
    modules = sorted(
        path.relative_to(ROOT).as_posix()
        for top in ("mcptool", "simulators")
        for path in (ROOT / top).rglob("*.py")
        if "__pycache__" not in path.parts
    )
    assert [name for name in modules if name not in wheel_names] == []


def test_the_wheel_holds_only_the_packages_and_their_metadata(wheel_names: set[str]) -> None:
    tops = {name.split("/")[0] for name in wheel_names}
    (metadata,) = tops - {"mcptool", "simulators"}
    assert metadata.endswith(".dist-info")
