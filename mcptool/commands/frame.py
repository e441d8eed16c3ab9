"""``mcptool frame``: encode MCP frames to hex and decode hex (or raw bytes) into frames."""

from __future__ import annotations

import json
import re
import secrets
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import click

from mcptool.commands.options import Int, plural
from mcptool.errors import UsageError
from mcptool.frame import (
    HEADER_SIZE,
    MAX_LENGTH_LIMIT,
    Frame,
    FrameDecoder,
    FrameError,
    Message,
    MessageType,
    encode_frame,
    parse_message,
)

#: Types whose payload is just a u64 token, made up when none is given.
TOKEN_TYPES = (MessageType.PING, MessageType.PONG)


@click.group()
def frame() -> None:
    """Encode and decode frames of the MCP wire protocol (docs/PROTOCOL.md)."""


def _read_payload(payload: str | None, payload_hex: str | None) -> bytes:
    if payload is not None and payload_hex is not None:
        raise UsageError("give --payload or --payload-hex, not both")
    if payload_hex is not None:
        return _parse_hex(payload_hex, "--payload-hex")
    if payload is None:
        return b""
    if payload.startswith("@"):
        path = Path(payload[1:])
        try:
            return path.read_bytes()
        except OSError as exc:
            raise UsageError(f"--payload {payload}: cannot read {path}: {exc.strerror}") from None
    try:
        return payload.encode()
    except UnicodeEncodeError as exc:  # bytes that were not UTF-8 on the command line
        raise UsageError(
            f"--payload: not UTF-8 at character {exc.start}: give binary payloads"
            " with --payload-hex or @FILE"
        ) from None


def _parse_hex(text: str, what: str) -> bytes:
    digits = re.sub(r"0x|[\s:,_-]", "", text.strip(), flags=re.IGNORECASE)
    bad = re.search(r"[^0-9a-fA-F]", digits)
    if bad:
        raise UsageError(f"{what}: {bad.group()!r} is not a hex digit")
    if len(digits) % 2:
        raise UsageError(f"{what}: odd number of hex digits ({len(digits)}); each byte needs two")
    return bytes.fromhex(digits)


@frame.command()
@click.option("--type", "type_name", required=True, help="Message type: name (REQUEST) or number.")
@click.option(
    "--payload",
    help="Payload as text, or @FILE for a file's bytes. PING and PONG without one carry a "
    "fresh random token.",
)
@click.option("--payload-hex", help="Payload as hex digits (for binary payloads such as DATA).")
@click.option(
    "--version",
    "version",
    type=Int(0, 255),
    default=1,
    show_default=True,
    help="Version byte of the header (1 is the only one defined; others craft bad frames).",
)
@click.option(
    "--no-validate",
    is_flag=True,
    help="Do not check the payload against its type (to craft bad frames for tests).",
)
@click.option("--raw", is_flag=True, help="Write the frame's bytes, not hex.")
def encode(
    type_name: str,
    payload: str | None,
    payload_hex: str | None,
    version: int,
    no_validate: bool,
    raw: bool,
) -> None:
    """Print one frame as hex."""
    try:
        message_type = MessageType.parse(type_name)
    except ValueError as exc:
        raise UsageError(f"--type: {exc}") from None
    body = _read_payload(payload, payload_hex)
    if payload is None and payload_hex is None and message_type in TOKEN_TYPES and not no_validate:
        body = secrets.token_bytes(8)  # what a peer sends: a token it has not used before
    built = Frame(message_type, body, version)
    if not no_validate:
        try:
            parse_message(built)
        except FrameError as exc:
            raise UsageError(
                f"payload is not a valid {message_type.name}: {exc} (--no-validate sends it anyway)"
            ) from None
    try:
        wire = encode_frame(built)
    except FrameError as exc:
        raise UsageError(str(exc)) from None
    if raw:
        sys.stdout.buffer.write(wire)
        sys.stdout.buffer.flush()
    else:
        click.echo(wire.hex())


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _describe(message: Message) -> dict[str, Any]:
    described = _jsonable(message)
    assert isinstance(described, dict)
    # Requests and responses nest an envelope: show its JSON as on the wire.
    if "envelope" in described:
        return message.envelope.to_dict()  # type: ignore[attr-defined, no-any-return]
    return described


def _frames_with_offsets(data: bytes, decoder: FrameDecoder) -> list[tuple[int, Frame]]:
    out: list[tuple[int, Frame]] = []
    if decoder.on_garbage == "resync":
        # Byte by byte, so that each frame's offset is known exactly despite skipped garbage.
        for i in range(len(data)):
            for f in decoder.feed(data[i : i + 1]):
                out.append((decoder.offset - HEADER_SIZE - len(f.payload), f))
        return out
    offset = 0
    try:
        decoded = decoder.feed(data)
    except FrameError as exc:
        decoded = getattr(exc, "frames", [])
        for f in decoded:
            out.append((offset, f))
            offset += HEADER_SIZE + len(f.payload)
        exc.frames = out  # type: ignore[attr-defined]
        raise
    for f in decoded:
        out.append((offset, f))
        offset += HEADER_SIZE + len(f.payload)
    return out


@frame.command()
@click.argument("source", default="-", metavar="HEX|-")
@click.option("--raw", is_flag=True, help="Read raw bytes from standard input, not hex.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines, one object a frame.")
@click.option("--resync", is_flag=True, help="Skip garbage to the next magic byte, don't stop.")
@click.option(
    "--max-length",
    type=Int(0, MAX_LENGTH_LIMIT),
    default=MAX_LENGTH_LIMIT,
    show_default=True,
    help="Largest payload accepted.",
)
def decode(source: str, raw: bool, as_json: bool, resync: bool, max_length: int) -> int:
    """Decode one or many frames from HEX (or '-' for standard input) and print their fields."""
    if raw:
        if source != "-":
            raise UsageError("--raw reads standard input: leave out HEX or give '-'")
        data = sys.stdin.buffer.read()
    else:
        text = sys.stdin.read() if source == "-" else source
        data = _parse_hex(text, "input" if source == "-" else "HEX")
    if not data:
        raise UsageError("no input: give frames as hex, or pipe them in")
    decoder = FrameDecoder(max_length=max_length, on_garbage="resync" if resync else "raise")
    failure: FrameError | None = None
    try:
        frames = _frames_with_offsets(data, decoder)
    except FrameError as exc:
        frames, failure = exc.frames, exc  # type: ignore[attr-defined]
    else:
        try:
            decoder.close()
        except FrameError as exc:
            failure = exc
    bad_payloads = 0
    for offset, f in frames:
        try:
            message: dict[str, Any] | None = _describe(parse_message(f))
            payload_error = None
        except FrameError as exc:
            message, payload_error = None, str(exc)
            bad_payloads += 1
        _print_frame(offset, f, message, payload_error, as_json)
    if resync and decoder.skipped_bytes:
        click.echo(
            f"skipped {decoder.skipped_bytes} bytes of garbage in {decoder.resyncs} places",
            err=True,
        )
    if failure is not None:
        raise failure
    if bad_payloads:
        click.echo(f"error: {plural(bad_payloads, 'frame')} with an invalid payload", err=True)
        return 1
    return 0


def _print_frame(
    offset: int, f: Frame, message: dict[str, Any] | None, payload_error: str | None, as_json: bool
) -> None:
    if as_json:
        record: dict[str, Any] = {
            "offset": offset,
            "version": f.version,
            "type": f.type.name,
            "type_code": int(f.type),
            "length": len(f.payload),
            "payload_hex": f.payload.hex(),
            "message": message,
        }
        if payload_error:
            record["payload_error"] = payload_error
        click.echo(json.dumps(record, separators=(",", ":")))
        return
    head = f"@{offset:<5} v{f.version} {f.type.name:<9} (0x{int(f.type):02X}) len {len(f.payload)}"
    if payload_error:
        click.echo(f"{head}  payload error: {payload_error}")
    elif message is not None:
        shown = " ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in message.items())
        click.echo(f"{head}  {shown}")
