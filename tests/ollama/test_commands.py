"""``mcptool ollama ...`` and ``mcptool simulate ollama``, run as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcptool.serving.ollama_api import MODEL_SERVE, OllamaAPI

FINDING = {
    "type": "object",
    "properties": {
        "severity": {"enum": ["normal", "warning", "critical"]},
        "summary": {"type": "string"},
    },
    "required": ["severity", "summary"],
}


def mcptool(
    *args: str, url: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("OLLAMA_HOST", None)
    if url:
        env["OLLAMA_HOST"] = url
    return subprocess.run(
        [sys.executable, "-m", "mcptool", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        input=stdin,
    )


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """`mcptool simulate ollama` on an ephemeral port, for the whole module."""
    command = [
        *(sys.executable, "-m", "mcptool", "simulate", "ollama", "--port", "0", "--json"),
        *("--token-delay", "0", "--model", "llama3.2", "--model", "nomic-embed-text"),
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line, "the simulator did not start"
            yield json.loads(line)["url"]
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_health_reports_version_and_models(url: str) -> None:
    result = mcptool("ollama", "health", "--url", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Ollama 0.12.6 is running at {url}: 2 models pulled")


def test_models_lists_pulled_models_as_a_table_or_json(url: str) -> None:
    table = mcptool("ollama", "models", url=url)
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["NAME", "SIZE", "PARAMS", "QUANT", "LOADED"]
    listed = json.loads(mcptool("ollama", "models", "--json", url=url).stdout)
    assert [m["name"] for m in listed] == ["llama3.2:latest", "nomic-embed-text:latest"]


def test_models_running_shows_when_each_loaded_model_unloads(url: str) -> None:
    assert mcptool("ollama", "generate", "--url", url, "Hello").returncode == 0  # loads it
    table = mcptool("ollama", "models", "--running", url=url).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "PARAMS", "QUANT", "UNTIL"]
    [row] = [line for line in table[1:] if line.startswith("llama3.2")]
    expires = row.split()[-1]
    assert expires[:2] == "20" and "T" in expires  # a time (RFC 3339), not "yes"
    pulled = mcptool("ollama", "models", url=url).stdout.splitlines()
    [row] = [line for line in pulled if line.startswith("llama3.2")]
    assert row.split()[-2:] == ["until", expires]


def test_generate_prints_the_streamed_answer(url: str) -> None:
    result = mcptool("ollama", "generate", "--url", url, "Hello there")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(".") and result.stdout.endswith("\n")


def test_chat_reads_the_prompt_from_stdin_and_prints_figures(url: str) -> None:
    result = mcptool("ollama", "chat", "--stats", "-o", "num_predict=4", "-", url=url, stdin="hi")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 4
    assert "4 tokens in" in result.stderr and "tokens/s" in result.stderr


def test_format_with_a_schema_file_prints_validated_json(url: str, tmp_path: Path) -> None:
    schema = tmp_path / "finding.json"
    schema.write_text(json.dumps(FINDING))
    result = mcptool("ollama", "chat", "--format", str(schema), "pump 3?", url=url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["severity"] in ("normal", "warning", "critical")


def test_json_prints_text_and_metrics(url: str) -> None:
    result = mcptool("ollama", "generate", "--json", "x", url=url)
    data = json.loads(result.stdout)
    assert data["text"] and data["metrics"]["eval_count"] > 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("generate", "-m", "qwen3", "x"),
            2,
            "error: model qwen3 is not on the server at http://127.0.0.1:",
        ),
        (
            ("generate", "--format", "/no/such.json", "x"),
            2,
            "error: --format /no/such.json: no such file",
        ),
        (("chat", "-o", "temperature", "x"), 2, "error: --option temperature: expected KEY=VALUE"),
        (("generate", " "), 2, "error: PROMPT is empty"),
    ],
)
def test_user_errors_are_one_line_with_an_exit_code(
    url: str, args: tuple[str, ...], code: int, message: str
) -> None:
    result = mcptool("ollama", *args, url=url)
    assert result.returncode == code
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("server", "hint"),
    [
        ("", "none pulled: run `ollama pull llama3.2`"),  # a real Ollama sends no Server
        (
            MODEL_SERVE,
            "none served: start `mcptool model serve` or `mcptool simulate ollama` with one",
        ),
    ],
    ids=["ollama", "mcptool"],
)
async def test_a_server_without_models_gets_the_advice_that_fits_it(server: str, hint: str) -> None:
    async with OllamaAPI(server=server) as empty:
        command = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "mcptool", "ollama", "models", "--url", empty.url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await command.communicate()
    assert (command.returncode, out.decode(), err) == (0, f"no models ({hint})\n", b"")


def test_an_unreachable_server_is_one_line() -> None:
    result = mcptool("ollama", "health", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert result.stderr == (
        "error: cannot reach Ollama at http://127.0.0.1:9: is `ollama serve` running?\n"
    )


def test_simulating_on_a_busy_port_is_one_line(url: str) -> None:
    port = url.rsplit(":", 1)[1]
    result = mcptool("simulate", "ollama", "--port", port)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: port {port} on 127.0.0.1 is in use")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_simulator_stops_cleanly_on_ctrl_c_and_sigterm(stop: signal.Signals) -> None:
    command = [sys.executable, "-m", "mcptool", "simulate", "ollama", "--port", "0", "--json"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert json.loads(process.stdout.readline())["url"].startswith("http://127.0.0.1:")
        process.send_signal(stop)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert err.splitlines()[-1] == "stopped"
