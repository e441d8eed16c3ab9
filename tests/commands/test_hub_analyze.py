"""`mcptool hub --analysis-config` answers `mcptool link request --action analyze` through
its routes (real hub process, real CLI, Ollama simulators), and shows the routes' health
in `status`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from simulators.ollama import OllamaSimulator
from tests.edge.test_analyze import window
from tests.link.conftest import write_keys
from tests.link.test_commands import mcptool, start_hub

SECRET = "correct-horse-battery-staple"


async def test_link_request_analyze_prints_the_finding_and_the_model_that_answered(
    tmp_path: Path,
) -> None:
    keys = write_keys(tmp_path / "keys", f"node-1 {SECRET}\n")
    async with (
        OllamaSimulator(models=["small:0.5b"], port=0) as small,
        OllamaSimulator(models=["other:1b"], port=0) as big,  # big:7b is not pulled there
    ):
        config = tmp_path / "analysis.toml"
        config.write_text(
            "[analysis]\n"
            f'[[analysis.routes]]\nmodel = "small:0.5b"\nollama = "{small.url}"\n'
            f'[[analysis.routes]]\nmodel = "big:7b"\nollama = "{big.url}"\n'
            'first_for = "critical"\nfallback = true\n'
        )
        hub = start_hub("--keys", str(keys), "--analysis-config", str(config))
        try:
            base = ["link", "request", hub.url, "--node-id", "node-1", "--key-file", str(keys)]
            data = json.dumps(window(96.0))
            asked = await asyncio.to_thread(
                mcptool, *base, "--action", "analyze", "--data", data, "--timeout", "30"
            )
            status = await asyncio.to_thread(mcptool, *base, "--action", "status")
            bad = await asyncio.to_thread(
                mcptool, *base, "--action", "analyze", "--data", '{"device": "b"}'
            )
        finally:
            hub.process.terminate()
            out, err = hub.process.communicate(timeout=10)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    envelope = json.loads(asked.stdout)
    assert envelope["code"] == 200 and envelope["data"]["model"] == "small:0.5b"
    assert envelope["data"]["finding"]["severity"] == "critical"
    routes = json.loads(status.stdout)["data"]["routes"]
    assert [(r["model"], r["health"]) for r in routes] == [
        ("small:0.5b", "healthy"),
        ("big:7b", "unhealthy"),  # skipped: the critical window went to the small model
    ]
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["message"] == (
        "bad analyze request: data.readings: missing (required)"
    )
    warning = f"analysis route big:7b at {big.url} is not healthy at start"
    assert warning in err and "serves only other:1b" in err, out + err


def test_a_bad_analysis_config_is_a_one_line_error(tmp_path: Path) -> None:
    keys = write_keys(tmp_path / "keys", f"node-1 {SECRET}\n")
    config = tmp_path / "analysis.toml"
    config.write_text('[analysis]\n[[analysis.routes]]\nmodel = "big"\nfirst_for = "urgent"\n')
    result = mcptool("hub", "--keys", str(keys), "--analysis-config", str(config))
    assert result.returncode == 2
    assert result.stderr == (
        f"error: --analysis-config {config}: analysis.routes[0].first_for: should be"
        " 'warning' or 'critical', got 'urgent'\n"
    )
