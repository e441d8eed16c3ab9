"""Authentication inputs, and keys files that are read strictly and refused when too open."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcptool.link import KeysFileError, accept_proof, auth_mac, load_keys, load_secret
from mcptool.link.auth import new_nonce
from tests.link.conftest import KEY, write_keys

SECRET = "f" * 32
BASE = {
    "client_nonce": b"c" * 16,
    "server_nonce": b"s" * 16,
    "version": 1,
    "offered": (1,),
    "node_id": "node-1",
}


def test_nonces_are_16_fresh_random_bytes() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) == 16 for n in nonces)


@pytest.mark.parametrize(
    "change",
    [
        {"client_nonce": b"C" * 16},
        {"server_nonce": b"S" * 16},
        {"version": 2},
        {"offered": (2, 1)},
        {"node_id": "node-2"},
    ],
)
def test_the_auth_mac_covers_every_input(change: dict) -> None:
    assert auth_mac(KEY, **BASE) != auth_mac(KEY, **{**BASE, **change})


def test_the_auth_mac_depends_on_the_key() -> None:
    assert auth_mac(KEY, **BASE) != auth_mac(b"x" * 32, **BASE)


def test_an_auth_mac_is_never_a_valid_accept_proof() -> None:
    proof = accept_proof(
        KEY,
        client_nonce=b"c" * 16,
        server_nonce=b"s" * 16,
        node_id="node-1",
        session_id=b"i" * 16,
        heartbeat_ms=1000,
        dead_after=3,
        window=256,
    )
    assert proof != auth_mac(KEY, **BASE)
    assert len(proof) == 32


def test_keys_file_lines_comments_and_blank_lines(tmp_path: Path) -> None:
    path = write_keys(
        tmp_path / "keys",
        f"# hub keys\n\nnode-1 {SECRET}\nnode-2   {SECRET[::-1]}  # the pump\n",
    )
    assert load_keys(path) == {"node-1": SECRET.encode(), "node-2": SECRET[::-1].encode()}


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_keys_file_readable_by_others_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = write_keys(tmp_path / "keys", f"node-1 {SECRET}\n", mode)
    with pytest.raises(KeysFileError) as error:
        load_keys(path)
    message = str(error.value)
    assert "readable by group or others" in message
    assert f"chmod 600 {path}" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("node-1\n", "expected `NODE_ID SECRET`"),
        (f"node-1 {SECRET}\nnode-1 {SECRET}\n", "appears twice"),
        ("node-1 short\n", "shorter than 16"),
        ("# nothing\n", "holds no"),
        (f"{'n' * 65} {SECRET}\n", "1 to 64 bytes"),
    ],
)
def test_malformed_keys_files_name_the_line_and_the_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write_keys(tmp_path / "keys", text)
    with pytest.raises(KeysFileError, match=expected):
        load_keys(path)


def test_a_missing_keys_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeysFileError, match="does not exist"):
        load_keys(tmp_path / "nope")


def test_a_node_secret_file_may_hold_just_the_secret(tmp_path: Path) -> None:
    path = write_keys(tmp_path / "node.key", f"{SECRET}\n")
    assert load_secret(path, "node-1") == SECRET.encode()


def test_a_node_may_use_the_hubs_keys_file_format(tmp_path: Path) -> None:
    path = write_keys(tmp_path / "keys", f"node-1 {SECRET}\nnode-2 {'g' * 20}\n")
    assert load_secret(path, "node-2") == b"g" * 20
    with pytest.raises(KeysFileError, match="node-3 SECRET"):
        load_secret(path, "node-3")


def test_a_node_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = write_keys(tmp_path / "node.key", f"{SECRET}\n", 0o644)
    with pytest.raises(KeysFileError, match="chmod 600"):
        load_secret(path, "node-1")
