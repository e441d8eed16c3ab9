"""Cutting a poll's message into messages of at most ``limit`` bytes, by readings.

A destination with a size limit (the MQTT broker's maximum packet size) sends a poll
that is over it as several messages in the same format, each with fewer readings and
``seq`` the sequence number of its first reading, so that subscribers need nothing new.
A reading that alone is over the limit is left out (and named with its size, so that the
destination can report it); the rest of the poll still goes. A record of another kind
than telemetry (a finding, a status) has no readings and cannot be cut.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mcptool.gateway.spool import Kind, Record

__all__ = ["Piece", "Split", "Unsplittable", "split"]


class Unsplittable(ValueError):
    """A record over the limit that has no readings to cut it by (``why`` says which)."""

    def __init__(self, size: int, why: str) -> None:
        super().__init__(why)
        self.size = size
        self.why = why


@dataclass(frozen=True, slots=True)
class Piece:
    """One message to send: the readings ``seq_first .. seq_last`` of the record."""

    body: bytes
    seq_first: int
    seq_last: int

    @property
    def count(self) -> int:
        return self.seq_last - self.seq_first + 1


@dataclass(slots=True)
class Split:
    """A record as messages that fit, and the readings that alone do not: seq ranges,
    each with the size of its first reading's message."""

    pieces: list[Piece]
    oversized: list[tuple[int, int, int]] = field(default_factory=list)

    def leave_out(self, seq: int, size: int) -> None:
        """Leave reading ``seq`` out (one range with the previous one when adjacent)."""
        if self.oversized and self.oversized[-1][1] == seq - 1:
            first, _, first_size = self.oversized[-1]
            self.oversized[-1] = (first, seq, first_size)
        else:
            self.oversized.append((seq, seq, size))


def split(record: Record, limit: int) -> Split:
    """``record`` as one message if it fits ``limit`` bytes, else cut by readings.

    Raises ``Unsplittable`` when it is over the limit and not a poll.
    """
    payload = record.payload
    if len(payload) <= limit:
        return Split([Piece(payload, record.seq_first, record.seq_last)])
    if record.kind is not Kind.TELEMETRY:
        raise Unsplittable(len(payload), f"is a {record.kind}, which has no readings to cut by")
    try:
        message = json.loads(payload)
    except ValueError:
        raise Unsplittable(len(payload), "is not JSON") from None
    readings = message.pop("readings", None) if isinstance(message, dict) else None
    found = [_own_seq(reading) for reading in readings] if isinstance(readings, list) else []
    seqs = [seq for seq in found if seq is not None]
    if not seqs or len(seqs) < len(found):
        raise Unsplittable(len(payload), "has no readings to cut it by")
    guess = max(1, len(readings) * limit // len(payload) - 1)
    result = Split([])
    per, start = guess, 0
    while start < len(readings):
        chunk = readings[start : start + per]
        first, last = seqs[start], seqs[start + len(chunk) - 1]
        body = json.dumps(
            {**message, "seq": first, "readings": chunk}, ensure_ascii=False, separators=(",", ":")
        ).encode()
        if len(body) <= limit:
            result.pieces.append(Piece(body, first, last))
        elif per > 1:
            per = max(1, per // 2)  # readings longer than average: retry smaller
            continue
        else:
            result.leave_out(first, len(body))
            per = guess  # the next readings are likely of the usual size again
        start += len(chunk)
    return result


def _own_seq(reading: object) -> int | None:
    seq = reading.get("seq") if isinstance(reading, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None
