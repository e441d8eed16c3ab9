"""Register data types: values to and from 16-bit Modbus registers, in any byte/word order.

Byte orders use the Telegraf / Neuron letters, where ``A`` is the most significant byte of
the value:

==========  ======================================  =================================
order       on the wire (registers in address order)  also known as
==========  ======================================  =================================
``ABCD``    ``AB CD``                               big-endian (Modbus default)
``DCBA``    ``DC BA``                               little-endian
``BADC``    ``BA DC``                               big-endian words, bytes swapped
``CDAB``    ``CD AB``                               word swap (many energy meters)
==========  ======================================  =================================

64-bit types follow the same pattern (``CDAB`` means the four words are reversed, each
word big-endian: ``GH EF CD AB``); 16-bit types only see the byte swap (``BADC`` and
``DCBA`` read ``BA``). Strings pack two characters per register, first character in the
high byte, unless the order swaps bytes (``BADC``/``DCBA``). ``bool`` in a register is
"non-zero". Scale and offset are the caller's business.

Speed matters (a gateway decodes tens of thousands of points a second), so every
(type, order, length) gets a :class:`Codec` built once, holding precompiled
:class:`struct.Struct` objects; decoding is two C calls. Byte-swapped orders are handled
without Python loops: packing the registers little-endian swaps the bytes of each word,
and reading the swapped bytes with the opposite endianness reverses the word order.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

from mcptool.errors import McptoolError

Value = bool | int | float | str

# name -> (struct code, registers); string length comes from the caller.
_TYPES: Final[dict[str, tuple[str, int]]] = {
    "bool": ("H", 1),
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
    "float64": ("d", 4),
    "string": ("s", 0),
}
TYPES: Final[tuple[str, ...]] = tuple(_TYPES)
ORDERS: Final[tuple[str, ...]] = ("ABCD", "DCBA", "BADC", "CDAB")

# 2- and 8-letter spellings (Telegraf's AB/BA and ABCDEFGH...) map to the 4-letter ones.
_ORDER_ALIASES: Final[dict[str, str]] = {
    **{o: o for o in ORDERS},
    "AB": "ABCD",
    "BA": "BADC",
    "ABCDEFGH": "ABCD",
    "HGFEDCBA": "DCBA",
    "BADCFEHG": "BADC",
    "GHEFCDAB": "CDAB",
    "BIG": "ABCD",
    "LITTLE": "DCBA",
}
# order -> (bytes swapped inside each word, words reversed)
_ORDER_SWAPS: Final[dict[str, tuple[bool, bool]]] = {
    "ABCD": (False, False),
    "DCBA": (True, True),
    "BADC": (True, False),
    "CDAB": (False, True),
}


class DataTypeError(McptoolError, ValueError):
    """An unknown type or order, a value that does not fit, or registers of the wrong count."""


def normalize_type(name: str) -> str:
    """Return the canonical type name, or raise :class:`DataTypeError` naming the choices."""
    key = str(name).strip().lower()
    if key not in _TYPES:
        raise DataTypeError(f'unknown type "{name}" (one of: {", ".join(TYPES)})')
    return key


def normalize_order(order: str) -> str:
    """Return ``ABCD``/``DCBA``/``BADC``/``CDAB`` for any accepted spelling of a byte order."""
    key = str(order).strip().upper()
    if key not in _ORDER_ALIASES:
        raise DataTypeError(f'unknown byte order "{order}" (one of: {", ".join(ORDERS)})')
    return _ORDER_ALIASES[key]


def swap_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """Swap the two bytes of every register in ``data`` (an even number of bytes).

    A gateway that decodes many points from one read swaps the block once and passes it
    as ``swapped=`` to :meth:`Codec.decode_bytes`.
    """
    words = array("H", bytes(data))
    words.byteswap()
    return words.tobytes()


class Codec:
    """Encoder/decoder for one (type, order, length); get one from :func:`codec`."""

    __slots__ = (
        "_regs",
        "_value",
        "count",
        "order",
        "swapped",
        "type",
    )

    def __init__(self, type: str, order: str = "ABCD", length: int | None = None) -> None:
        self.type = normalize_type(type)
        self.order = normalize_order(order)
        byte_swap, word_swap = _ORDER_SWAPS[self.order]
        code, count = _TYPES[self.type]
        if self.type == "string":
            if length is None or int(length) < 1:
                raise DataTypeError("string needs a length in registers (>= 1)")
            count = int(length)
            # Strings have no word order: only the byte swap inside each register applies.
            word_swap = False
            code = f"{2 * count}s"
        elif count == 1:
            word_swap = False
        self.count: int = count
        # Every order is one struct read, from either the wire bytes or the same bytes with
        # each register's two bytes swapped: BADC swapped is ABCD (big-endian), CDAB
        # swapped is DCBA (little-endian). ``swapped`` says which buffer; registers packed
        # little-endian ("<H") produce the swapped buffer directly.
        self.swapped: bool = byte_swap != word_swap
        self._regs = struct.Struct(("<" if self.swapped else ">") + "H" * count)
        self._value = struct.Struct(("<" if word_swap else ">") + code)

    def __repr__(self) -> str:
        return f"Codec({self.type!r}, {self.order!r}, count={self.count})"

    # -- decoding -------------------------------------------------------------------

    def decode(self, registers: Sequence[int]) -> Value:
        """Decode ``count`` registers (ints 0..65535, in address order) to a value."""
        try:
            raw = self._regs.pack(*registers)
        except struct.error as exc:
            raise DataTypeError(
                f"{self.type} needs {self.count} registers of 0..65535, got {list(registers)!r}"
            ) from exc
        return self._finish(self._value.unpack(raw)[0])

    def decode_bytes(
        self,
        data: bytes | bytearray | memoryview,
        offset: int = 0,
        swapped: bytes | bytearray | memoryview | None = None,
    ) -> Value:
        """Decode the value whose first register is ``offset`` registers into ``data``.

        ``data`` holds registers as they come off the wire (big-endian words), e.g. the
        payload of a read-holding-registers reply. ``swapped`` is ``swap_bytes(data)``,
        passed by callers that decode many points from one block.
        """
        start = 2 * offset
        if self.swapped:
            if swapped is None:
                swapped = swap_bytes(data[start : start + 2 * self.count])
                start = 0
            return self._finish(self._value.unpack_from(swapped, start)[0])
        return self._finish(self._value.unpack_from(data, start)[0])

    def _finish(self, value: int | float | bytes) -> Value:
        if self.type == "bool":
            return value != 0
        if self.type == "string":
            return bytes(value).rstrip(b"\x00").decode("utf-8", errors="replace")  # type: ignore[arg-type]
        return value  # type: ignore[return-value]

    # -- encoding -------------------------------------------------------------------

    def encode(self, value: Value) -> list[int]:
        """Encode ``value`` to ``count`` registers (ints, in address order)."""
        return list(self._regs.unpack(self._pack(value)))

    def encode_bytes(self, value: Value) -> bytes:
        """Encode ``value`` to ``2 * count`` bytes as they go on the wire."""
        raw = self._pack(value)
        return swap_bytes(raw) if self.swapped else raw

    def _pack(self, value: Value) -> bytes:
        """The value's bytes in the layout ``_value`` reads (swapped or wire)."""
        if self.type == "string":
            data = str(value).encode("utf-8")
            if len(data) > 2 * self.count:
                raise DataTypeError(
                    f"string of {len(data)} bytes does not fit {self.count} registers"
                )
            raw = self._value.pack(data)
        else:
            if self.type == "bool":
                value = 1 if value else 0
            elif isinstance(value, float) and self._value.format[-1] not in "fd":
                if not value.is_integer():
                    raise DataTypeError(f"{self.type} cannot hold {value!r} (not an integer)")
                value = int(value)
            try:
                raw = self._value.pack(value)
            except (struct.error, OverflowError, TypeError) as exc:
                raise DataTypeError(f"{self.type} cannot hold {value!r}") from exc
        return raw


@lru_cache(maxsize=1024)
def codec(type: str, order: str = "ABCD", length: int | None = None) -> Codec:
    """Return the (cached) :class:`Codec` for a type, byte order and string length."""
    return Codec(type, order, length)


def register_count(type: str, length: int | None = None) -> int:
    """Number of registers a value of ``type`` occupies (strings: ``length``)."""
    return codec(type, "ABCD", length).count


def decode(
    registers: Sequence[int], type: str, order: str = "ABCD", length: int | None = None
) -> Value:
    """Decode registers to a value, e.g. ``decode([0x4248, 0], "float32") == 50.0``."""
    if type == "string" and length is None:
        length = len(registers)
    return codec(type, order, length).decode(registers)


def encode(value: Value, type: str, order: str = "ABCD", length: int | None = None) -> list[int]:
    """Encode a value to registers, e.g. ``encode(50.0, "float32") == [0x4248, 0]``."""
    if type == "string" and length is None:
        length = max(1, (len(str(value).encode("utf-8")) + 1) // 2)
    return codec(type, order, length).encode(value)
