"""Mutual authentication of an MCP link: nonces, HMAC-SHA256 proofs and keys files.

The exact byte strings fed to HMAC are specified in docs/LINK.md ("Authentication");
change them only together with that page. Each input starts with its own label, so a
client's AUTH mac can never be replayed as a hub's ACCEPT proof, and every variable-size
field is either length-prefixed or last, so two different inputs never concatenate to the
same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import struct
from collections.abc import Iterable
from pathlib import Path

from mcptool.link.errors import KeysFileError

NONCE_SIZE = 16
SESSION_ID_SIZE = 16
MIN_SECRET_LENGTH = 16
AUTH_LABEL = b"mcp1-auth\x00"
ACCEPT_LABEL = b"mcp1-accept\x00"


def new_nonce() -> bytes:
    """16 fresh random bytes from the OS CSPRNG: a new one for every handshake."""
    return secrets.token_bytes(NONCE_SIZE)


def new_session_id() -> bytes:
    return secrets.token_bytes(SESSION_ID_SIZE)


def auth_mac(
    key: bytes,
    *,
    client_nonce: bytes,
    server_nonce: bytes,
    version: int,
    offered: Iterable[int],
    node_id: str,
) -> bytes:
    """The client's AUTH mac; binding the offered and chosen versions stops a downgrade."""
    versions = bytes(offered)
    message = b"".join(
        (
            AUTH_LABEL,
            client_nonce,
            server_nonce,
            bytes((version, len(versions))),
            versions,
            node_id.encode("utf-8"),
        )
    )
    return hmac.new(key, message, hashlib.sha256).digest()


def accept_proof(
    key: bytes,
    *,
    client_nonce: bytes,
    server_nonce: bytes,
    node_id: str,
    session_id: bytes,
    heartbeat_ms: int,
    dead_after: int,
    window: int,
) -> bytes:
    """The hub's proof in ACCEPT; it also binds the session parameters it announces."""
    message = b"".join(
        (
            ACCEPT_LABEL,
            server_nonce,
            client_nonce,
            session_id,
            struct.pack(">IBH", heartbeat_ms, dead_after, window),
            node_id.encode("utf-8"),
        )
    )
    return hmac.new(key, message, hashlib.sha256).digest()


def macs_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison: timing must not tell an attacker how many bytes matched."""
    return hmac.compare_digest(a, b)


def _read_private_file(path: Path, what: str) -> list[tuple[int, list[str]]]:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeysFileError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise KeysFileError(f"{what} {path} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeysFileError(f"{what} {path} is not a regular file")
    if info.st_mode & 0o077:
        raise KeysFileError(
            f"{what} {path} is readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}):"
            f" run chmod 600 {path}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"{what} {path} cannot be read: {exc}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if fields:
            rows.append((number, fields))
    return rows


def _check_secret(path: Path, number: int, secret: str) -> bytes:
    if len(secret) < MIN_SECRET_LENGTH:
        raise KeysFileError(
            f"{path}:{number}: secret is shorter than {MIN_SECRET_LENGTH} characters:"
            " make one with `python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return secret.encode("utf-8")


def load_keys(path: str | os.PathLike[str]) -> dict[str, bytes]:
    """Read a hub's keys file: one ``NODE_ID SECRET`` pair a line, ``#`` starts a comment."""
    file = Path(path)
    keys: dict[str, bytes] = {}
    for number, fields in _read_private_file(file, "keys file"):
        if len(fields) != 2:
            raise KeysFileError(
                f"{file}:{number}: expected `NODE_ID SECRET`, got {len(fields)} fields"
            )
        node_id, secret = fields
        if not 1 <= len(node_id.encode("utf-8")) <= 64:
            raise KeysFileError(f"{file}:{number}: node id must be 1 to 64 bytes of UTF-8")
        if node_id in keys:
            raise KeysFileError(f"{file}:{number}: node id {node_id!r} appears twice")
        keys[node_id] = _check_secret(file, number, secret)
    if not keys:
        raise KeysFileError(f"keys file {file} holds no `NODE_ID SECRET` line")
    return keys


def load_secret(path: str | os.PathLike[str], node_id: str) -> bytes:
    """A node's secret: a file holding just the secret, or a keys file with a line for it."""
    file = Path(path)
    rows = _read_private_file(file, "key file")
    if len(rows) == 1 and len(rows[0][1]) == 1:
        number, (secret,) = rows[0]
        return _check_secret(file, number, secret)
    for number, fields in rows:
        if len(fields) == 2 and fields[0] == node_id:
            return _check_secret(file, number, fields[1])
    raise KeysFileError(
        f"key file {file} holds neither a single secret nor a `{node_id} SECRET` line"
    )
