"""Read what the fleet's streams hold, for the tests' and the benchmark's verdicts."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from mcptool.fleet import DATA_STREAM, FINDINGS_STREAM
from mcptool.fleet.subjects import HEADER_NODE, HEADER_SEQ, MSG_ID


async def messages(js: JetStreamContext, stream: str) -> list[Any]:
    info = await js.stream_info(stream)
    found: list[Any] = []
    if not info.state.messages:
        return found
    for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
        try:
            found.append(await js.get_msg(stream, seq))
        except NotFoundError:
            continue
    return found


async def stored_readings(js: JetStreamContext) -> Counter[tuple[str, int]]:
    """How often each ``(node, seq)`` is in the data stream (exactly once: all 1)."""
    count: Counter[tuple[str, int]] = Counter()
    for message in await messages(js, DATA_STREAM):
        headers = message.headers or {}
        if HEADER_SEQ in headers:
            count[(headers[HEADER_NODE], int(headers[HEADER_SEQ]))] += 1
    return count


async def findings(js: JetStreamContext) -> Counter[str]:
    """How often each window's finding id is in the findings stream."""
    count: Counter[str] = Counter()
    for message in await messages(js, FINDINGS_STREAM):
        count[(message.headers or {}).get(MSG_ID, "")] += 1
    return count


async def finding_records(js: JetStreamContext) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in await messages(js, FINDINGS_STREAM)]


def poll(device: str, ts_ms: int, value: float) -> bytes:
    """A gateway's poll message (the telemetry JSON the link relays)."""
    return json.dumps(
        {
            "device": device,
            "kind": "telemetry",
            "ts": ts_ms,
            "readings": [{"point": "temperature", "value": value, "unit": "°C"}],
        }
    ).encode()
