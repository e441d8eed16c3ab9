"""``mcptool model serve``: every mistake a user can make is one line and exit 2.

These run the command as a user does, without loading a real model (the tests that serve
one are in tests/serving/test_model_serve.py).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mcptool.commands.model import loopback


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mcptool", "model", "serve", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_model_file_that_does_not_exist(tmp_path: Path) -> None:
    line = one_line_error(serve("--model", str(tmp_path / "nope.gguf")))
    assert "does not exist" in line and "nope.gguf" in line


def test_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"<html>a download page, not a model</html>")
    line = one_line_error(serve("--model", str(path)))
    assert "is not a GGUF model file" in line


@pytest.mark.parametrize("listen", ["11435", "localhost", "127.0.0.1:99999", ":11435"])
def test_listen_must_be_host_and_port(listen: str) -> None:
    line = one_line_error(serve("--listen", listen))
    assert "--listen" in line and "HOST:PORT" in line


def test_a_gguf_llama_cpp_cannot_load_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp", reason="pip install 'mcptool[local-model]'")
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    line = one_line_error(serve("--model", str(path), "--listen", "127.0.0.1:0"))
    assert "llama.cpp cannot load" in line and "empty.gguf" in line


def test_a_port_in_use_names_the_fix(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp", reason="pip install 'mcptool[local-model]'")
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(serve("--model", str(path), "--listen", f"127.0.0.1:{port}"))
    assert f"port {port} on 127.0.0.1 is in use" in line and "--listen" in line


def test_only_loopback_addresses_count_as_loopback() -> None:
    assert loopback("127.0.0.1") and loopback("::1") and loopback("localhost")
    assert loopback("127.3.2.1")
    assert not loopback("0.0.0.0") and not loopback("192.0.2.7") and not loopback("edge-box")
