"""Installed from the wheel alone (no source checkout to fall back on), the CLI runs, the
bundled profiles (also the demo's), the example configs and the analysis prompts load.

The wheel is unpacked into a folder that goes first on PYTHONPATH, and Python runs from a
folder outside the checkout, so nothing can come from the work tree; the dependencies come
from the test environment. Every mcptool/simulators module the run imported is checked to
be the wheel's copy (the editable install of the checkout is still on the meta path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.packaging.conftest import ROOT

_PROBE = r"""
import contextlib, io, json, runpy, sys


def cli(*args):
    sys.argv = ["mcptool", *args]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module("mcptool", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code
    return {"code": code, "out": out.getvalue(), "err": err.getvalue()}


from mcptool.analysis.prompting import Prompts
from mcptool.commands import demo
from simulators.modbus import bundled_profiles, load_profile

prompts = Prompts.load()
report = {
    "help": cli("simulate", "modbus", "--help"),
    "simulate": cli(
        "simulate", "modbus", "--profile", "boiler", "--profile", "gateway",
        "--port", "0", "--duration", "0.1", "--json",
    ),
    "example": cli("gateway", "example", "plant"),
    "bundled": list(bundled_profiles()),
    "profiles": {
        name: [len(unit.points) for unit in load_profile(name).all_units()]
        for name in ("boiler", "boiler_drift", "gateway")
    },
    "demo": [load_profile(name).name for name, _ in demo.DEVICES.values()],
    "prompts": {"system": prompts.system, "sources": dict(prompts.sources)},
    "modules": {
        name: module.__file__
        for name, module in sys.modules.items()
        if name.split(".")[0] in ("mcptool", "simulators", "tests", "fixtures")
        and getattr(module, "__file__", None)
    },
}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


@pytest.fixture(scope="module")
def report(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    assert not elsewhere.resolve().is_relative_to(ROOT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=elsewhere,
        env={**env, "PYTHONPATH": str(installed), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def test_everything_imported_comes_from_the_wheel(report: dict[str, Any], installed: Path) -> None:
    modules = report["modules"]
    assert {"mcptool", "simulators", "mcptool.cli", "simulators.modbus.profile"} <= set(modules)
    elsewhere = {
        name: path for name, path in modules.items() if not Path(path).is_relative_to(installed)
    }
    assert elsewhere == {}


def test_the_cli_runs_and_simulates_a_bundled_profile(report: dict[str, Any]) -> None:
    assert report["help"]["code"] == 0, report["help"]["err"]
    assert "--profile" in report["help"]["out"]
    simulate = report["simulate"]
    assert simulate["code"] == 0, simulate["err"]
    devices = [json.loads(line) for line in simulate["out"].splitlines()]
    assert [(d["device"], d["units"]) for d in devices] == [
        ("boiler", [1]),
        ("gateway", [1, 2, 10]),
    ]


def test_the_bundled_profiles_resolve_by_name(report: dict[str, Any]) -> None:
    assert set(report["bundled"]) >= {"boiler", "boiler_drift", "gateway", "power_meter"}
    profiles = report["profiles"]
    assert profiles["boiler"][0] > 0 and profiles["boiler_drift"][0] > 0
    # The gateway profile includes boiler.toml and power_meter.toml: read from the wheel too.
    assert len(profiles["gateway"]) == 3 and all(profiles["gateway"])
    assert "boiler_drift" in report["demo"]


def test_the_default_analysis_prompts_load(report: dict[str, Any]) -> None:
    prompts = report["prompts"]
    assert prompts["system"].strip()
    assert sorted(prompts["sources"].values()) == [
        "(default) repair.txt",
        "(default) system.txt",
        "(default) window.txt",
    ]


def test_the_example_gateway_config_prints(report: dict[str, Any]) -> None:
    example = report["example"]
    assert example["code"] == 0, example["err"]
    assert example["out"] == (ROOT / "mcptool/gateway/examples/plant.toml").read_text("utf-8")
