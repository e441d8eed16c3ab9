"""Benchmark: MCP frame stream decoding and encoding, side by side with their baselines.

Baselines, measured in the same run on the same frames (32-byte payloads):
- a bare ``struct`` loop that splits the stream into (type, payload) tuples with no
  validation at all: the limit for Python;
- construct's interpreter on the definition in ``mcptool.frame.spec`` (and, for the
  record, construct's compiled form).

Each figure is the best of several interleaved rounds, so a noisy neighbour on this
shared machine slows all contenders alike. The last line is one JSON object.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import time
from collections.abc import Callable

from mcptool.frame import Frame, FrameDecoder, MessageType, encode_frame, spec

N_FRAMES = 200_000
N_CONSTRUCT = 20_000  # construct is ~30x slower: fewer frames, same per-frame rate
CHUNK = 65536  # what one socket read might return
ROUNDS = 5
PAYLOAD = bytes(range(32))
TYPES = [MessageType.DATA, MessageType.ACK, MessageType.EVENT, MessageType.PING]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def best_rate(run: Callable[[], int], rounds: int = ROUNDS) -> float:
    """Items per second of the fastest of ``rounds`` runs."""
    best = float("inf")
    count = 0
    for _ in range(rounds):
        start = time.perf_counter()
        count = run()
        best = min(best, time.perf_counter() - start)
    return count / best


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def main() -> None:
    frames = [Frame(TYPES[i % len(TYPES)], PAYLOAD) for i in range(N_FRAMES)]
    stream = b"".join(encode_frame(f) for f in frames)
    chunks = chunks_of(stream, CHUNK)
    small_stream = stream[: N_CONSTRUCT * (5 + len(PAYLOAD))]
    header = struct.Struct(">BBHB")

    def decode_mcptool() -> int:
        decoder = FrameDecoder()
        n = 0
        for chunk in chunks:
            n += len(decoder.feed(chunk))
        assert n == N_FRAMES
        return n

    def decode_struct() -> int:
        out: list[tuple[int, bytes]] = []
        append = out.append
        unpack = header.unpack_from
        rest = b""
        for chunk in chunks:
            buf = rest + chunk if rest else chunk
            pos, end = 0, len(buf)
            while end - pos >= 5:
                _, _, length, type_code = unpack(buf, pos)
                stop = pos + 5 + length
                if stop > end:
                    break
                append((type_code, buf[pos + 5 : stop]))
                pos = stop
            rest = buf[pos:]
        assert len(out) == N_FRAMES
        return len(out)

    def decode_with(parser: object) -> Callable[[], int]:
        def run() -> int:
            stream_io = io.BytesIO(small_stream)
            parse = parser.parse_stream  # type: ignore[attr-defined]
            n = 0
            while stream_io.tell() < len(small_stream):
                parse(stream_io)
                n += 1
            assert n == N_CONSTRUCT
            return n

        return run

    def encode_mcptool() -> int:
        for f in frames:
            encode_frame(f)
        return N_FRAMES

    def encode_struct() -> int:
        pack = header.pack
        for f in frames:
            pack(0x5A, 1, len(f.payload), f.type) + f.payload
        return N_FRAMES

    def encode_construct() -> int:
        build = spec.Frame.build
        for f in frames[:N_CONSTRUCT]:
            build({"version": 1, "type": int(f.type), "payload": f.payload})
        return N_CONSTRUCT

    compiled = spec.Frame.compile()
    results: dict[str, float] = {}
    contenders = {
        "decode_mcptool": decode_mcptool,
        "decode_struct": decode_struct,
        "decode_construct": decode_with(spec.Frame),
        "decode_construct_compiled": decode_with(compiled),
        "encode_mcptool": encode_mcptool,
        "encode_struct": encode_struct,
        "encode_construct": encode_construct,
    }
    # Interleave: one round of each contender per pass, so drift hits everyone.
    best: dict[str, float] = dict.fromkeys(contenders, 0.0)
    for round_no in range(ROUNDS):
        for name, run in contenders.items():
            best[name] = max(best[name], best_rate(run, rounds=1))
        log(
            f"round {round_no + 1}/{ROUNDS}: "
            + ", ".join(f"{k}={v:,.0f}/s" for k, v in best.items())
        )
    results = best
    figures = {
        "frames": N_FRAMES,
        "payload_bytes": len(PAYLOAD),
        "decode_per_s": round(results["decode_mcptool"]),
        "encode_per_s": round(results["encode_mcptool"]),
        "decode_struct_per_s": round(results["decode_struct"]),
        "decode_construct_per_s": round(results["decode_construct"]),
        "decode_construct_compiled_per_s": round(results["decode_construct_compiled"]),
        "encode_struct_per_s": round(results["encode_struct"]),
        "encode_construct_per_s": round(results["encode_construct"]),
        "decode_vs_struct": round(results["decode_mcptool"] / results["decode_struct"], 3),
        "decode_vs_construct": round(results["decode_mcptool"] / results["decode_construct"], 1),
        "encode_vs_struct": round(results["encode_mcptool"] / results["encode_struct"], 3),
        "encode_vs_construct": round(results["encode_mcptool"] / results["encode_construct"], 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
