"""Who may be in the hub's handshake while strangers flood it, and how refusals are told.

Both classes are sans-IO: keys, addresses, node ids and the current time in; decisions and
log lines out. The hub's driver (:mod:`mcptool.link.server`) applies them.

A connection starts as a *stranger*. Strangers share ``max_handshakes -
reserved_handshakes`` slots, at most ``per_address`` of them from one address; when a new
stranger needs a slot, the oldest stranger (of its own address first) is turned away, so
idle sockets cannot hold the slots against newcomers, and a flooding address only churns
its own share. An address's share is enforced only against strangers older than
``grace``: nodes behind one NAT address that reconnect together (after a hub restart)
arrive in one burst, and each needs a moment between its connect and its HELLO.

A connection whose HELLO names a known node id moves to the ``reserved`` pool, where no
stranger can turn it away: however hard strangers flood, a known node's handshake is at
risk only in the few milliseconds between its connect and its HELLO.
One reserved slot per node id, so strangers who guess a few node ids cannot fill the
pool either.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field


class Admission:
    """The handshake slots: strangers (by address, oldest first) and known nodes."""

    def __init__(
        self,
        max_handshakes: int = 256,
        reserved: int = 64,
        per_address: int = 16,
        grace: float = 0.5,
    ) -> None:
        if not 0 <= reserved < max_handshakes:
            raise ValueError("reserved handshakes must be 0 .. max_handshakes - 1")
        if per_address < 1:
            raise ValueError("handshakes per address must be at least 1")
        self.max_handshakes = max_handshakes
        self.reserved = reserved
        self.per_address = per_address
        self.stranger_slots = max_handshakes - reserved
        self.grace = grace
        # key -> (address, admitted at); insertion order: oldest first
        self._strangers: dict[Hashable, tuple[str, float]] = {}
        self._per_address: Counter[str] = Counter()
        self._known: dict[Hashable, str] = {}  # key -> node id
        self._known_ids: set[str] = set()

    def __len__(self) -> int:
        """Connections in the handshake."""
        return len(self._strangers) + len(self._known)

    @property
    def strangers(self) -> int:
        return len(self._strangers)

    @property
    def known(self) -> int:
        return len(self._known)

    def admit(self, key: Hashable, address: str, now: float) -> Hashable | None:
        """Take a new connection in as a stranger; the one to turn away for it, if any."""
        evicted: Hashable | None = None
        if self._per_address[address] >= self.per_address:
            oldest, (_, since) = next((k, v) for k, v in self._strangers.items() if v[0] == address)
            if now - since >= self.grace:
                evicted = oldest
        if evicted is None and len(self._strangers) >= self.stranger_slots:
            evicted = next(iter(self._strangers), None)
        if evicted is not None:
            self.finished(evicted)
        self._strangers[key] = (address, now)
        self._per_address[address] += 1
        return evicted

    def admits(self, key: Hashable) -> bool:
        """Whether ``key`` holds a slot (False after it was turned away or finished)."""
        return key in self._strangers or key in self._known

    def hello(self, key: Hashable, node_id: str, known: bool) -> None:
        """A HELLO arrived on ``key``: a known node id moves it to the reserved pool."""
        if (
            not known
            or key not in self._strangers
            or node_id in self._known_ids
            or len(self._known) >= self.reserved
        ):
            return  # stays a stranger
        address, _ = self._strangers.pop(key)
        self._release_address(address)
        self._known[key] = node_id
        self._known_ids.add(node_id)

    def finished(self, key: Hashable) -> None:
        """The handshake of ``key`` ended (a session, a refusal, a close); idempotent."""
        stranger = self._strangers.pop(key, None)
        if stranger is not None:
            self._release_address(stranger[0])
            return
        node_id = self._known.pop(key, None)
        if node_id is not None:
            self._known_ids.discard(node_id)

    def _release_address(self, address: str) -> None:
        left = self._per_address[address] - 1
        if left:
            self._per_address[address] = left
        else:
            del self._per_address[address]


OTHERS = "other addresses"


@dataclass(slots=True)
class _Tally:
    since: float
    kinds: Counter[str] = field(default_factory=Counter)


class RefusalLog:
    """Refused handshakes, told in at most two lines per address and interval.

    The first refusal from an address is told at once, with its whole reason (a node
    with a wrong key shows up in the log right away). Later ones within ``interval``
    seconds are only counted, and told as one line when the interval is over:
    ``412 handshakes refused from 127.0.0.7 in the last 60 s: 400 timeout, 12 busy``.
    At most ``max_addresses`` addresses are tallied one by one; the rest share one tally
    ("other addresses"). So a flood of any size and spread writes at most
    ``2 x (max_addresses + 1)`` lines per interval, and the tallies take bounded memory.
    """

    def __init__(self, interval: float = 60.0, max_addresses: int = 64) -> None:
        if interval <= 0 or max_addresses < 1:
            raise ValueError("interval must be > 0 and max_addresses at least 1")
        self.interval = interval
        self.max_addresses = max_addresses
        self._tallies: dict[str, _Tally] = {}

    def __len__(self) -> int:
        return len(self._tallies)

    def refused(self, address: str, kind: str, reason: str, now: float) -> str | None:
        """Count one refusal; the line to log now, if this one is to be told at once."""
        key = address
        if key not in self._tallies and len(self._tallies) >= self.max_addresses:
            key = OTHERS
        tally = self._tallies.get(key)
        if tally is None:
            self._tallies[key] = _Tally(now)
            return f"handshake from {address} refused: {reason}"
        tally.kinds[kind] += 1
        return None

    def next_deadline(self) -> float | None:
        if not self._tallies:
            return None
        return min(t.since for t in self._tallies.values()) + self.interval

    def due(self, now: float) -> list[str]:
        """The summary lines of every interval that is over at ``now``."""
        lines = []
        for address, tally in list(self._tallies.items()):
            if now < tally.since + self.interval:
                continue
            if tally.kinds:
                lines.append(self._line(address, tally, now))
                # Still refusing: the next interval starts, with no line told at once.
                self._tallies[address] = _Tally(now)
            else:
                del self._tallies[address]  # quiet for a whole interval: forget it
        return lines

    def flush(self, now: float) -> list[str]:
        """Every tally told now, e.g. when the hub stops; the log starts over."""
        lines = [self._line(a, t, now) for a, t in self._tallies.items() if t.kinds]
        self._tallies.clear()
        return lines

    @staticmethod
    def _line(address: str, tally: _Tally, now: float) -> str:
        total = sum(tally.kinds.values())
        kinds = ", ".join(f"{n} {kind}" for kind, n in tally.kinds.most_common())
        plural = "handshake" if total == 1 else "handshakes"
        return (
            f"{total} {plural} refused from {address} in the last"
            f" {max(now - tally.since, 0):.0f} s: {kinds}"
        )


def address_key(peername: object) -> str:
    """The address the limits count by: an IPv4 address, or an IPv6 /64 (one subscriber's
    share: a single host can have any number of addresses in its /64)."""
    if not isinstance(peername, tuple) or not peername:
        return "unknown"
    host = str(peername[0])
    if len(peername) == 2:
        return host  # AF_INET: (host, port), the host already in dotted form
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return host
