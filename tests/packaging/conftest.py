"""The wheel of this checkout, built once per test session, offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Left out of the copy the wheel is built from: VCS data, environments, build output and
# caches; none of them belongs in a wheel, and copying a venv would take long.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
    "*.sqlite*",
)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built the way `pip install .` builds one, from a copy of the work tree.

    The copy: pip builds in the source tree and leaves build/ and *.egg-info behind, which
    would race with other test runs and the editable install in the same work tree.
    No build isolation and --no-index: the build backend comes from the test environment
    (setuptools>=77 is in the [test] extra), so the test needs no network.
    """
    setuptools = version("setuptools")
    assert int(setuptools.split(".")[0]) >= 77, (
        f"setuptools {setuptools} cannot build this project (needs >=77): "
        "pip install -e '.[test]' installs it"
    )
    src = tmp_path_factory.mktemp("source") / "mcptool"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = out.glob("mcptool-*.whl")
    return built


@pytest.fixture(scope="session")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())
