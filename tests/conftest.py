"""Shared test helpers.

Tests that need an external program (mbpoll, mosquitto) use ``require_program``: on a
developer's machine a missing program skips the test with the install hint; under CI
(``CI`` set) it fails, so a missing install step can never turn into a green run.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_program(name: str, package: str | None = None) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path:
        return path
    message = f"{name} is not installed: apt-get install {package or name}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
