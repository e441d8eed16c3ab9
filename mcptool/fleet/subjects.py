"""Names on the NATS side: subjects, stream names, message ids and headers.

Node ids and device names are free text (a node id is 1 to 64 UTF-8 bytes), while a
subject token may not hold ``.``, ``*``, ``>`` or whitespace. :func:`token` escapes
every byte outside ``[A-Za-z0-9_-]`` as ``%XX`` (``%`` included), so the mapping is
reversible (:func:`untoken`) and two names never share a subject.
"""

from __future__ import annotations

import re

__all__ = [
    "BRIDGE",
    "BRIDGE_BUCKET",
    "DATA_STREAM",
    "FINDINGS_STREAM",
    "HEADER_CLOSED",
    "HEADER_DEVICE",
    "HEADER_FIRST",
    "HEADER_NODE",
    "HEADER_SEQ",
    "HEADER_WINDOW",
    "MQTT_STREAM",
    "MQTT_TOPIC",
    "MSG_ID",
    "WINDOWS_STREAM",
    "WORKERS",
    "data_subject",
    "device_of",
    "event_subject",
    "finding_id",
    "finding_subject",
    "mqtt_reading_id",
    "node_data_filter",
    "node_devices_filter",
    "reading_id",
    "token",
    "untoken",
    "window_id",
    "window_subject",
]

DATA_STREAM = "FLEET_DATA"  # every DATA frame and EVENT, replicated, deduplicated
WINDOWS_STREAM = "FLEET_WINDOWS"  # closed windows waiting for a worker (work queue)
FINDINGS_STREAM = "FLEET_FINDINGS"  # one finding (or analysis error) per window
WORKERS = "workers"  # the one durable pull consumer every worker shares
# What gateways publish to NATS's MQTT listener, on the MQTT topic fleet/mqtt/<node>/
# <device> (NATS makes it the subject fleet.mqtt.<node>.<device>), until a hub's bridge
# has moved it into FLEET_DATA (work queue)
MQTT_STREAM = "FLEET_MQTT"
MQTT_TOPIC = "fleet/mqtt/{node}/{device}"  # the gateway's [mqtt] topic for this path
BRIDGE = "bridge"  # the durable pull consumer of FLEET_MQTT, one hub at a time
BRIDGE_BUCKET = "FLEET_BRIDGE"  # key-value bucket of the bridge's lease

MSG_ID = "Nats-Msg-Id"  # JetStream's duplicate detection key
HEADER_NODE = "Mcp-Node"
HEADER_SEQ = "Mcp-Seq"  # the link's DATA sequence number
HEADER_DEVICE = "Mcp-Device-Seq"  # a reading that came over MQTT: the poll's own seq
HEADER_WINDOW = "Mcp-Window"  # window index of a reading: floor(ts / window_s)
HEADER_FIRST = "Mcp-Window-First"  # stream seq of the first reading of that window
# on a late reading stored while no window was open (its device's last one closed by
# time): the newest closed window index
HEADER_CLOSED = "Mcp-Window-Closed"

_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def token(name: str) -> str:
    """``name`` as one subject token (empty names become ``%``, which no escape yields)."""
    if not name:
        return "%"
    if _SAFE.fullmatch(name):
        return name
    out = []
    for char in name:
        if _SAFE.fullmatch(char):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def untoken(text: str) -> str:
    if text == "%":
        return ""
    raw = bytearray()
    index = 0
    while index < len(text):
        if text[index] == "%":
            raw.append(int(text[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.extend(text[index].encode("ascii"))
            index += 1
    return raw.decode("utf-8")


def data_subject(node: str, device: str | None) -> str:
    """A reading of ``device`` (``dev.<device>``), or a frame that is no poll (``raw``)."""
    if device is None:
        return f"fleet.data.{token(node)}.raw"
    return f"fleet.data.{token(node)}.dev.{token(device)}"


def node_devices_filter(node: str) -> str:
    """The readings of every device of ``node`` (one subject per device)."""
    return f"fleet.data.{token(node)}.dev.*"


def device_of(subject: str) -> str:
    """The device a reading's subject names (``fleet.data.<node>.dev.<device>``)."""
    return untoken(subject.rsplit(".", 1)[-1])


def node_data_filter(node: str) -> str:
    """Every DATA frame of ``node``: its last one is the node's resume point."""
    return f"fleet.data.{token(node)}.>"


def event_subject(node: str) -> str:
    return f"fleet.event.{token(node)}"


def window_subject(node: str, device: str) -> str:
    return f"fleet.windows.{token(node)}.{token(device)}"


def finding_subject(node: str, device: str) -> str:
    return f"fleet.findings.{token(node)}.{token(device)}"


def reading_id(node: str, seq: int) -> str:
    """The message id of DATA ``seq`` of ``node``: the same on every hub."""
    return f"{node}:{seq}"


def mqtt_reading_id(node: str, device: str, seq: int) -> str:
    """The message id of a poll that came over MQTT: its device's ``seq`` (the first
    reading's), from the payload. Tokens keep it apart from every ``node:seq`` of the
    link (those end in ``:<digits>``, these in ``@<digits>`` with no ``:`` after it)."""
    return f"mqtt:{token(node)}/{token(device)}@{seq}"


def window_id(node: str, device: str, index: int) -> str:
    return f"window:{node}/{device}@{index}"


def finding_id(node: str, device: str, index: int) -> str:
    """One id per window, whatever worker and however often it was analysed."""
    return f"finding:{node}/{device}@{index}"
