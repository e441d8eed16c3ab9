"""``mcptool frame encode|decode`` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcptool.cli import main

REQUEST = (
    '{"header":{"traceId":"t1","service":"demo","timestamp":0},'
    '"payload":{"action":"ping","data":{}}}'
)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_encode_then_decode_through_a_pipe_like_the_readme() -> None:
    mcptool = [sys.executable, "-m", "mcptool"]
    encoded = subprocess.run(
        [*mcptool, "frame", "encode", "--type", "REQUEST", "--payload", REQUEST],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    decoded = subprocess.run(
        [*mcptool, "frame", "decode", "-", "--json"],
        input=encoded.stdout, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert decoded.returncode == 0, decoded.stderr
    record = json.loads(decoded.stdout)
    assert record["type"] == "REQUEST"
    assert record["message"]["payload"]["action"] == "ping"


def test_encode_prints_the_frame_as_hex(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "frame", "encode", "--type", "ping", "--payload-hex", "0000000000000001"
    )
    assert code == 0
    assert out.strip() == "5a010008100000000000000001"


def test_encode_reads_a_payload_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "req.json"
    path.write_text(REQUEST)
    code, out, _ = run_cli(capsys, "frame", "encode", "--type", "0x30", "--payload", f"@{path}")
    assert code == 0
    assert bytes.fromhex(out.strip())[5:] == REQUEST.encode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "PNG"], "unknown message type 'PNG'"),
        (["--type", "PING", "--payload-hex", "00"], "payload is not a valid PING"),
        (["--type", "REQUEST", "--payload", "{}"], "request.header: missing"),
        (["--type", "DATA", "--payload-hex", "0g"], "'g' is not a hex digit"),
        (["--type", "DATA", "--payload", "@/nonexistent/x"], "cannot read /nonexistent/x"),
    ],
)
def test_bad_encode_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, "frame", "encode", *args)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_no_validate_crafts_an_invalid_frame_on_purpose(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "frame", "encode", "--type", "PING", "--no-validate")
    assert code == 0
    assert out.strip() == "5a01000010"


def test_decode_prints_every_frame_with_its_offset(capsys: pytest.CaptureFixture[str]) -> None:
    ping = "5a010008100000000000000001"
    ack = "5a010008210000000000000002"
    code, out, _ = run_cli(capsys, "frame", "decode", f"{ping} {ack}")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("@0") and "PING" in lines[0] and "token=1" in lines[0]
    assert lines[1].startswith("@13") and "ACK" in lines[1] and "seq=2" in lines[1]


def test_decode_names_what_is_wrong_and_where(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "frame", "decode", "5a0100081000000000000000014142")
    assert code == 1
    assert "PING" in out  # the good frame before the garbage is still shown
    assert err.strip() == "error: frame at offset 13: 2 trailing byte(s) that do not start a frame"


def test_decode_bad_magic(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "frame", "decode", "4101000010")
    assert code == 1
    assert err.strip() == "error: frame at offset 0: bad magic 0x41 (expected 0x5A)"


def test_decode_resync_reports_skipped_garbage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "frame", "decode", "--resync", "4142" + "5a010008100000000000000001" + "43"
    )
    assert code == 0
    assert out.startswith("@2 ")
    assert "skipped 3 bytes of garbage in 2 places" in err


def test_decode_raw_bytes_from_stdin() -> None:
    wire = bytes.fromhex("5a010008210000000000000002")
    result = subprocess.run(
        [sys.executable, "-m", "mcptool", "frame", "decode", "--raw", "--json"],
        input=wire, capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0
    assert json.loads(result.stdout)["message"] == {"seq": 2}


def test_decode_flags_a_valid_frame_with_an_invalid_payload(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(capsys, "frame", "decode", "5a01000032")
    assert code == 1
    assert "payload error: event envelope: invalid JSON" in out
    assert err == "error: 1 frame with an invalid payload\n"


def test_decode_of_nothing_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "frame", "decode", "  ")
    assert code == 2
    assert "no input" in err


def test_a_ping_without_a_payload_carries_a_fresh_token(capsys: pytest.CaptureFixture[str]) -> None:
    frames = []
    for _ in range(2):
        code, out, err = run_cli(capsys, "frame", "encode", "--type", "PING")
        assert (code, err) == (0, "")
        frames.append(bytes.fromhex(out.strip()))
    for wire in frames:
        assert wire[:5] == bytes.fromhex("5a01000810")  # a PING with an 8-byte token
    assert frames[0] != frames[1]
    code, out, _ = run_cli(capsys, "frame", "decode", frames[0].hex())
    assert code == 0 and "PING" in out


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"[" * 5000, "JSON nested deeper than 64 levels"),
        (b'{"n":' + b"9" * 5000 + b"}", "a number of 5000 characters"),
    ],
)
def test_hostile_json_is_a_payload_error_never_an_internal_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, payload: bytes, message: str
) -> None:
    # Issue 12: both exited 70 with a RecursionError / ValueError from inside json.
    path = tmp_path / "payload.json"
    path.write_bytes(payload)
    code, _, err = run_cli(capsys, "frame", "encode", "--type", "EVENT", "--payload", f"@{path}")
    assert code == 2 and message in err and err.count("\n") == 1
    wire = (bytes([0x5A, 1]) + len(payload).to_bytes(2, "big") + b"\x32" + payload).hex()
    code, out, err = run_cli(capsys, "frame", "decode", wire)
    assert code == 1 and f"payload error: event envelope: {message}" in out
