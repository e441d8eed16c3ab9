"""Each device's baseline in the cluster, so whichever worker takes a device's next
window continues its history (the z-score, stuck and flat-line rules judge a window
against the device's past windows; see ``Analyzer.state``).

Bucket ``FLEET_BASELINES``: a JetStream key-value bucket, replicated like the streams,
one key per device (:func:`baseline_key`), the latest value only. The value is JSON::

    {"version": 1, "window_s": 10.0, "windows": [..., 170000001, 170000002],
     "state": <Analyzer.state of the device after the last of those windows>}

``windows`` are the indices of the windows the baseline took, oldest first (as many as
the baseline keeps): a redelivered window is one of them, and is not taken twice.

The rules (docs/FLEET.md): a worker reads the value (and its revision) before it
analyses a window, analyses against it, and after the window's finding is stored it
writes the baseline advanced by the window, expecting the revision it read (JetStream's
expected last subject sequence), so two workers never both advance it. A window takes
the baseline forward only if it is newer than the newest window the baseline took; a
redelivered window, or an older one (two windows of a device analysed at once, the
older finishing last) is analysed against what is stored and leaves it as it is. When
the revision moved on meanwhile, the worker reads the new value and, if the window is
still newer, applies its readings to that (statistics only; its finding stands) and
tries again. A value that cannot be read (corrupt, another version, another window
length) is logged once and replaced by the next window's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mcptool.fleet.ingest import retry
from mcptool.fleet.streams import StreamSettings
from mcptool.fleet.subjects import token

__all__ = [
    "BUCKET",
    "MAX_VALUE_BYTES",
    "RECORD_VERSION",
    "BaselineStore",
    "Loaded",
    "StateOf",
    "Stored",
    "baseline_key",
    "decode",
    "encode",
]

log = logging.getLogger(__name__)

BUCKET = "FLEET_BASELINES"
RECORD_VERSION = 1
# A point's baseline is 5 series of baseline_windows numbers (30 by default: about 2 kB
# of JSON); 256 KiB holds a hundred points at that, far below NATS's 1 MB message limit.
MAX_VALUE_BYTES = 256 * 1024
MAX_AGE_S = 30 * 86_400.0  # a device silent for a month starts its baseline afresh

# the analysis state of the device, its baseline cut to the newest n windows
# (``Analyzer.state``)
StateOf = Callable[[int], dict[str, Any]]


def baseline_key(node: str, device: str) -> str:
    """``<node>.<device>``, each a subject token with ``=`` for its ``%`` (a key may not
    hold ``%``; a token never holds ``=``, so the key stays reversible)."""
    return f"{token(node)}.{token(device)}".replace("%", "=")


@dataclass(frozen=True, slots=True)
class Stored:
    """A device's baseline as the bucket holds it."""

    window_s: float
    windows: tuple[int, ...]  # never empty, oldest first
    state: dict[str, Any]

    def takes(self, index: int) -> bool:
        """Whether window ``index`` moves this baseline forward: only one newer than the
        newest it took (not a redelivered window, nor an older one)."""
        return index > self.windows[-1]


def decode(body: bytes) -> Stored:
    """The stored value of ``body``; ValueError when it is not one of this version
    (the analysis state inside is checked when it is restored)."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    if value.get("version") != RECORD_VERSION:
        raise ValueError(f"version {value.get('version')!r}, this worker reads {RECORD_VERSION}")
    window_s, windows, state = value.get("window_s"), value.get("windows"), value.get("state")
    if isinstance(window_s, bool) or not isinstance(window_s, int | float) or window_s <= 0:
        raise ValueError("no window length")
    if (
        not isinstance(windows, list)
        or not windows
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in windows)
    ):
        raise ValueError("no list of windows")
    if not isinstance(state, dict):
        raise ValueError("no analysis state")
    return Stored(float(window_s), tuple(windows), state)


def encode(
    state_of: StateOf, windows: Sequence[int], window_s: float, limit: int = MAX_VALUE_BYTES
) -> bytes | None:
    """The value of a baseline that took ``windows``, at most ``limit`` bytes: one too
    large keeps its newest half, and so on (None when not even one window fits)."""
    keep = len(windows)
    while keep >= 1:
        value = {
            "version": RECORD_VERSION,
            "window_s": window_s,
            "windows": list(windows[-keep:]),
            "state": state_of(keep),
        }
        body = json.dumps(value, separators=(",", ":")).encode()
        if len(body) <= limit:
            return body
        keep //= 2
    return None


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a worker read of a device's baseline: ``stored`` None when there is none it
    can use; ``revision`` 0 when the key does not exist."""

    node: str
    device: str
    stored: Stored | None
    revision: int

    @property
    def key(self) -> str:
        return baseline_key(self.node, self.device)


class BaselineStore:
    """The bucket, seen by one worker."""

    def __init__(self, kv: KeyValue, deadline_s: float = 15.0) -> None:
        self.kv = kv
        self.deadline_s = deadline_s
        self._reported: set[str] = set()

    @classmethod
    async def open(
        cls, js: JetStreamContext, settings: StreamSettings, deadline_s: float = 15.0
    ) -> BaselineStore:
        """The bucket, created when missing (an existing one is left as it is)."""
        try:
            kv = await js.key_value(BUCKET)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=BUCKET,
                    history=1,
                    replicas=settings.replicas,
                    storage=StorageType.FILE,
                    max_value_size=MAX_VALUE_BYTES,
                    ttl=MAX_AGE_S,
                    direct=True,
                )
            )
        return cls(kv, deadline_s)

    async def load(self, node: str, device: str, window_s: float) -> Loaded:
        key = baseline_key(node, device)
        try:
            entry = await retry(lambda: self.kv.get(key), self.deadline_s)
        except KeyNotFoundError:
            return Loaded(node, device, None, 0)
        loaded = Loaded(node, device, None, entry.revision or 0)
        try:
            stored = decode(entry.value or b"")
        except ValueError as exc:
            return self.refuse(loaded, str(exc))
        if stored.window_s != window_s:
            return self.refuse(loaded, f"of {stored.window_s:g} s windows, not {window_s:g} s")
        return Loaded(node, device, stored, loaded.revision)

    def refuse(self, loaded: Loaded, reason: str) -> Loaded:
        """``loaded`` without its value, which cannot be used: said once per device,
        and replaced when the window is done."""
        if loaded.key not in self._reported:
            self._reported.add(loaded.key)
            log.warning(
                "baseline of %s/%s in %s cannot be used (%s): starting it afresh",
                loaded.node, loaded.device, BUCKET, reason,
            )  # fmt: skip
        return Loaded(loaded.node, loaded.device, None, loaded.revision)

    async def advance(
        self,
        loaded: Loaded,
        index: int,
        window_s: float,
        keep: int,
        state_of: StateOf,
        replay: Callable[[Loaded], tuple[StateOf, Loaded]],
    ) -> str:
        """Store the baseline after window ``index`` (``state_of`` gives it; ``keep``:
        windows the baseline keeps), unless the window does not move it. When another
        worker moved it meanwhile, ``replay(newer)`` applies the window to the newer
        value. Returns what happened: ``advanced``, ``kept`` (a redelivered or older
        window) or ``too_large``."""
        while True:
            stored = loaded.stored
            if stored is not None and not stored.takes(index):
                return "kept"
            windows = [*(stored.windows if stored is not None else ()), index][-keep:]
            body = encode(state_of, windows, window_s)
            if body is None:
                if loaded.key not in self._reported:
                    self._reported.add(loaded.key)
                    log.warning("baseline of %s/%s is over %d bytes: not stored",
                                loaded.node, loaded.device, MAX_VALUE_BYTES)  # fmt: skip
                return "too_large"
            if await self._update(loaded, body):
                return "advanced"
            loaded = await self.load(loaded.node, loaded.device, window_s)
            state_of, loaded = replay(loaded)

    async def _update(self, loaded: Loaded, body: bytes) -> bool:
        """Write ``body`` if the key is still at ``loaded``'s revision."""

        async def attempt() -> bool:
            try:
                await self.kv.update(loaded.key, body, last=loaded.revision)
            except KeyWrongLastSequenceError:
                # another worker wrote first (or this one did, and its answer was lost:
                # then the reread shows the window taken)
                return False
            return True

        return await retry(attempt, self.deadline_s)
