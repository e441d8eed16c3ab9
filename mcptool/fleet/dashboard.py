"""The fleet's Grafana dashboard: its JSON, and every PromQL expression in it (what the
test against a real Prometheus evaluates)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["dashboard", "expressions"]


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana imports it (datasource: a variable, pick yours)."""
    text = resources.files("mcptool.fleet.grafana").joinpath("fleet.json").read_text("utf-8")
    return json.loads(text)


def expressions() -> list[tuple[str, str]]:
    """``(panel title, PromQL)`` for every query of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]
