"""Faults a simulated device can inject, their scope and trigger, and the CLI spec syntax.

A :class:`Fault` says *what* goes wrong (``kind`` and its parameters), *where* (optional
``device``, ``unit``, ``function`` and ``address`` range) and *when* (always, ``every``
Nth matching request, or with ``probability`` from a seeded RNG; at most ``times``
times; only from ``from`` and until ``until`` seconds since the simulator started). The
matcher never reads a clock: the server passes the time in. The server applies every
matching fault to a request, in the order they were added, so ``latency`` + ``fragment``
is a slow reply in pieces.

Spec syntax (``--fault``)::

    KIND[:ARG][,key=value]...

    latency:0.2,unit=1,every=3      latency:0.05-0.5 (random in a range)
    exception:0x06,function=3       silence,probability=0.1,seed=7
    reset,every=10                  close_after:5
    garbage / garbage:deadbeef      fragment:3,pause=0.05
    wrong_tid                       corrupt:protocol_id (length, unit, function, byte_count)
    refuse:2,mode=close             address=100-199, device=boiler, times=1
    silence,from=14,until=40        (seconds since start: from inclusive, until exclusive)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from dataclasses import field as dc_field
from typing import Any

from mcptool.errors import UsageError

KINDS = (
    "latency",
    "exception",
    "silence",
    "reset",
    "close_after",
    "garbage",
    "fragment",
    "wrong_tid",
    "corrupt",
    "refuse",
)
CORRUPT_FIELDS = ("protocol_id", "length", "unit", "function", "byte_count")
REFUSE_MODES = ("close", "reset", "backlog")
# Kinds that act on a connection as it arrives, not on a request.
CONNECTION_KINDS = ("refuse",)
# The positional ARG of each kind in the spec syntax.
_MAIN_ARG = {
    "latency": "seconds",
    "exception": "code",
    "close_after": "after",
    "garbage": "data",
    "fragment": "pieces",
    "wrong_tid": "value",
    "corrupt": "field",
    "refuse": "limit",
}
DEFAULT_GARBAGE = b"HTTP/1.0 400 Bad Request\r\n\r\n"


class FaultError(UsageError):
    """A fault that cannot be used; the message names the field."""


@dataclass
class Fault:
    """One injected fault. See the module docstring and docs/SIMULATORS.md."""

    kind: str
    # scope
    device: str | int | None = None  # profile name or listener index
    unit: int | None = None
    function: int | None = None
    address: int | tuple[int, int] | None = None  # one address or (first, last) inclusive
    # trigger
    every: int | None = None
    probability: float | None = None
    seed: int = 0
    times: int | None = None  # fire at most this many times
    # window, in seconds since the simulator started: [since, until). The spec key of
    # ``since`` is "from", a Python keyword.
    since: float | None = None
    until: float | None = None
    # parameters
    seconds: float = 0.0  # latency (or the low end with max_seconds)
    max_seconds: float | None = None  # latency: uniform in [seconds, max_seconds]
    code: int = 0x04  # exception
    after: int = 1  # close_after: requests answered before the close
    data: bytes | None = None  # garbage (default: an HTTP error line)
    size: int | None = None  # garbage: that many seeded random bytes instead
    pieces: int = 3  # fragment
    pause: float = 0.05  # fragment: seconds between pieces
    field: str = "protocol_id"  # corrupt
    value: int | None = None  # corrupt / wrong_tid: the value to put there
    limit: int = 0  # refuse: connections allowed at once
    mode: str = "close"  # refuse: close | reset | backlog

    fired: int = dc_field(default=0, compare=False)  # how many times it fired so far
    _seen: int = dc_field(default=0, init=False, repr=False, compare=False)
    _rng: random.Random = dc_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultError(f'kind: unknown fault "{self.kind}" (one of: {", ".join(KINDS)})')
        if isinstance(self.address, int):
            self.address = (self.address, self.address)
        _check(self.unit is None or 0 <= self.unit <= 255, "unit", "must be 0..255")
        _check(self.function is None or 1 <= self.function <= 127, "function", "must be 1..127")
        if self.address is not None:
            lo, hi = self.address
            _check(0 <= lo <= hi <= 0xFFFF, "address", "must be 0..65535 (first-last)")
        _check(self.every is None or self.every >= 1, "every", "must be >= 1")
        _check(
            self.probability is None or 0.0 <= self.probability <= 1.0,
            "probability",
            "must be between 0 and 1",
        )
        _check(self.times is None or self.times >= 1, "times", "must be >= 1")
        _check(
            self.since is None or (math.isfinite(self.since) and self.since >= 0),
            "from",
            "must be >= 0 (seconds since the simulator started)",
        )
        _check(
            self.until is None or (math.isfinite(self.until) and self.until > (self.since or 0)),
            "until",
            "must be after from" if self.since is not None else "must be > 0",
        )
        _check(self.seconds >= 0, "seconds", "must be >= 0")
        _check(
            self.max_seconds is None or self.max_seconds >= self.seconds,
            "max_seconds",
            "must be >= seconds",
        )
        _check(1 <= self.code <= 255, "code", "an exception code 1..255")
        _check(self.after >= 1, "after", "must be >= 1")
        _check(self.pieces >= 2 or self.kind != "fragment", "pieces", "must be >= 2")
        _check(self.pause >= 0, "pause", "must be >= 0")
        _check(
            self.field in CORRUPT_FIELDS,
            "field",
            f'unknown field "{self.field}" (one of: {", ".join(CORRUPT_FIELDS)})',
        )
        _check(self.limit >= 0, "limit", "must be >= 0")
        _check(
            self.mode in REFUSE_MODES,
            "mode",
            f'unknown mode "{self.mode}" (one of: {", ".join(REFUSE_MODES)})',
        )
        _check(self.size is None or self.size >= 1, "size", "must be >= 1")
        if self.value is not None:
            top = 0xFF if self.field in ("unit", "function", "byte_count") else 0xFFFF
            _check(
                0 <= self.value <= top or self.kind not in ("corrupt", "wrong_tid"),
                "value",
                f"must be 0..{top}",
            )
        self._rng = random.Random(self.seed)

    # -- scope and trigger ---------------------------------------------------------------

    @property
    def timed(self) -> bool:
        """Whether the fault holds only during a window of the run (``from``/``until``)."""
        return self.since is not None or self.until is not None

    def active(self, t: float) -> bool:
        """Whether the fault holds at ``t`` (seconds since the simulator started): from
        ``since`` inclusive to ``until`` exclusive, so ``from=14,until=40`` then
        ``from=40`` hand over without a gap or an overlap."""
        return (self.since is None or t >= self.since) and (self.until is None or t < self.until)

    def next_edge(self, t: float) -> float | None:
        """Seconds from ``t`` until :meth:`active` next changes; None when it never will."""
        ahead = [edge - t for edge in (self.since, self.until) if edge is not None and edge > t]
        return min(ahead, default=None)

    def covers(self, unit: int, function: int, first: int, last: int, t: float) -> bool:
        """Whether a request at ``t`` (seconds since the simulator started) is in this
        fault's scope and window (first/last: -1 when no address)."""
        if not self.active(t):
            return False
        if self.unit is not None and unit != self.unit:
            return False
        if self.function is not None and function != self.function:
            return False
        if self.address is not None:
            if first < 0:
                return False
            lo, hi = self.address  # type: ignore[misc]
            if last < lo or first > hi:
                return False
        return True

    def trigger(self) -> bool:
        """Count one request in scope; True when the fault fires for it."""
        if self.times is not None and self.fired >= self.times:
            return False
        self._seen += 1
        if self.every is not None and self._seen % self.every:
            return False
        if self.probability is not None and self._rng.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def delay(self) -> float:
        if self.max_seconds is None:
            return self.seconds
        return self._rng.uniform(self.seconds, self.max_seconds)

    def garbage(self) -> bytes:
        if self.size is not None:
            return bytes(self._rng.getrandbits(8) for _ in range(self.size))
        return self.data if self.data is not None else DEFAULT_GARBAGE


def _check(ok: bool, name: str, why: str) -> None:
    if not ok:
        raise FaultError(f"{name}: {why}")


# -- spec syntax ---------------------------------------------------------------------------

_INT_KEYS = {"unit", "function", "every", "seed", "times", "code", "after", "pieces", "value"}
_INT_KEYS |= {"limit", "size"}
_FLOAT_KEYS = {"seconds", "max_seconds", "probability", "pause"}
_STR_KEYS = {"field", "mode"}
# Spec key -> field, where they differ.
_WINDOW_KEYS = {"from": "since", "until": "until"}
_SPEC_KEYS = sorted(
    _INT_KEYS | _FLOAT_KEYS | _STR_KEYS | set(_WINDOW_KEYS) | {"device", "address", "data"}
)


def parse_fault(spec: str) -> Fault:
    """Parse ``KIND[:ARG][,key=value]...`` into a :class:`Fault`.

    Errors read ``fault "latency:x": seconds: expected a finite number, got "x"``.
    """
    try:
        return _parse(spec)
    except FaultError as exc:
        raise FaultError(f'fault "{spec}": {exc}') from None


def _parse(spec: str) -> Fault:
    head, *rest = [part.strip() for part in spec.strip().split(",")]
    kind, _, arg = head.partition(":")
    kind = kind.strip().lower().replace("-", "_")
    if kind not in KINDS:
        raise FaultError(f'kind: unknown fault "{kind}" (one of: {", ".join(KINDS)})')
    items: list[tuple[str, str]] = []
    if arg:
        if kind not in _MAIN_ARG:
            raise FaultError(f'"{kind}" takes no ":" argument')
        items.append((_MAIN_ARG[kind], arg))
    for part in rest:
        key, eq, val = part.partition("=")
        key = key.strip()
        if not eq:
            raise FaultError(f'"{part}": expected key=value')
        items.append((key, val.strip()))
    kwargs: dict[str, Any] = {}
    for key, val in items:
        kwargs.update(_convert(kind, key, val))
    return Fault(kind=kind, **kwargs)


def _convert(kind: str, key: str, val: str) -> dict[str, Any]:
    try:
        if key == "seconds" and "-" in val.lstrip("-"):
            lo, _, hi = val.partition("-")
            return {"seconds": _finite(lo), "max_seconds": _finite(hi)}
        if key == "address":
            lo, _, hi = val.partition("-")
            return {"address": (int(lo, 0), int(hi or lo, 0))}
        if key == "data":
            return {"data": bytes.fromhex(val)}
        if key == "device":
            return {"device": int(val) if val.isdigit() else val}
        if key in _INT_KEYS:
            return {key: int(val, 0)}
        if key in _FLOAT_KEYS:
            return {key: _finite(val)}
        if key in _WINDOW_KEYS:
            return {_WINDOW_KEYS[key]: _finite(val)}
        if key in _STR_KEYS:
            return {key: val}
    except ValueError:
        what = {"data": "hex bytes", "address": "an address or first-last"}.get(
            key, "a finite number"
        )
        raise FaultError(f'{key}: expected {what}, got "{val}"') from None
    raise FaultError(f"{key}: unknown key (known: {', '.join(_SPEC_KEYS)})")


def _finite(text: str) -> float:
    """A float that is a number: ``latency:inf`` would stall forever, ``nan`` never fire."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def fault_fields() -> list[str]:
    """Field names a Fault accepts (for documentation and error messages)."""
    return [f.name for f in fields(Fault) if not f.name.startswith("_")]
