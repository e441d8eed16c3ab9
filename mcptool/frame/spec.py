"""The MCP v1 wire format as construct definitions: the single source of truth.

Everything else in this package (the struct fast paths in ``codec`` and ``messages``)
derives from or is proven byte-identical to these definitions by property tests.
"""

from __future__ import annotations

import struct

from construct import (
    Bytes,
    Const,
    Construct,
    FormatField,
    GreedyBytes,
    GreedyString,
    Int8ub,
    Int16ub,
    Int32ub,
    Int64ub,
    PascalString,
    PrefixedArray,
    Rebuild,
    Struct,
    Subconstruct,
    Terminated,
    len_,
    this,
)

from mcptool.frame.types import MAGIC

NONCE_SIZE = 16
MAC_SIZE = 32
SESSION_ID_SIZE = 16

Header = Struct(
    "magic" / Const(MAGIC, Int8ub),
    "version" / Int8ub,
    "length" / Int16ub,
    "type" / Int8ub,
)

Frame = Struct(
    "magic" / Const(MAGIC, Int8ub),
    "version" / Int8ub,
    "length" / Rebuild(Int16ub, len_(this.payload)),
    "type" / Int8ub,
    "payload" / Bytes(this.length),
)

# Message payloads. Fixed layouts end with Terminated: trailing bytes are an error,
# not something to ignore, so that two implementations cannot disagree silently.
Hello = Struct(
    "node_id" / PascalString(Int8ub, "utf8"),
    "versions" / PrefixedArray(Int8ub, Int8ub),
    "nonce" / Bytes(NONCE_SIZE),
    Terminated,
)
Challenge = Struct("version" / Int8ub, "nonce" / Bytes(NONCE_SIZE), Terminated)
Auth = Struct("mac" / Bytes(MAC_SIZE), Terminated)
Accept = Struct(
    "session_id" / Bytes(SESSION_ID_SIZE),
    "heartbeat_ms" / Int32ub,
    "dead_after" / Int8ub,
    "window" / Int16ub,
    "proof" / Bytes(MAC_SIZE),
    Terminated,
)
Reject = Struct("code" / Int8ub, "reason" / GreedyString("utf8"))
Ping = Struct("token" / Int64ub, Terminated)
Pong = Ping
Data = Struct("seq" / Int64ub, "body" / GreedyBytes)
Ack = Struct("seq" / Int64ub, Terminated)
Json = Struct("json" / GreedyBytes)
Error = Struct("code" / Int16ub, "message" / GreedyString("utf8"))
Close = Struct("code" / Int8ub, "reason" / GreedyString("utf8"))


def struct_format(spec: Struct, fields: int | None = None) -> str:
    """The ``struct`` format of the first ``fields`` (default: all) fields of ``spec``.

    This is how the fast paths stay tied to the definition: their formats are read off
    the construct spec, never written twice. Only fixed-size number fields qualify;
    ``Terminated`` takes no bytes and is passed over.
    """
    codes = []
    subcons = [sub for sub in spec.subcons if sub is not Terminated]
    for sub in subcons[:fields]:
        field: Construct = sub
        while isinstance(field, Subconstruct) and not isinstance(field, FormatField):
            field = field.subcon
        if not isinstance(field, FormatField):
            raise TypeError(f"{sub.name}: not a fixed-size number field")
        codes.append(field.fmtstr)
    byte_orders = {code[0] for code in codes}
    if len(byte_orders) != 1:
        raise TypeError("mixed byte orders")
    return byte_orders.pop() + "".join(code[1:] for code in codes)


HEADER_STRUCT = struct.Struct(struct_format(Header))
