"""Exactly once, in order, over the whole state space: a stateful property test.

The node's and the hub's sans-IO machines, the hub's journal ledger on disk and a fake
clock, driven by hypothesis: the node sends data, bytes cross in random pieces, the
connection aborts at any point (in the middle of a batch too), a hostile or broken node
injects malformed frames, the clock moves, and either end restarts (the hub crashing and
reading its journal back, the node resending its unacknowledged queue). After every step
the application (the journal) must hold each datum once, in send order; after the network
heals, all of them.

The only duplicates allowed are the identified resends of a restarted node: data it had
sent but not yet seen acknowledged when it restarted (docs/LINK.md: a node's outbox does
not survive its process; its spool resends, and the hub may have delivered those).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mcptool.frame import Frame, MessageType, encode_frame
from mcptool.link import Backoff, ClientConnection, ClientState, JournalLedger, ServerConnection
from mcptool.link.events import Acknowledged, DataReceived
from tests.link.conftest import KEY, NODE

# What a hostile or broken node can put between its DATA frames.
MALFORMED = {
    "deep event": encode_frame(Frame(MessageType.EVENT, b"[" * 5000)),
    "huge int event": encode_frame(Frame(MessageType.EVENT, b'{"n":' + b"9" * 5000 + b"}")),
    "non-UTF-8 event": encode_frame(Frame(MessageType.EVENT, b'{"s":"\xff"}')),
    "deep request": encode_frame(Frame(MessageType.REQUEST, b'{"a":' * 3000)),
    "short DATA": encode_frame(Frame(MessageType.DATA, b"\x00\x01")),
    "bad PING": encode_frame(Frame(MessageType.PING, b"\x00")),
    "garbage": b"GET / HTTP/1.1\r\n\r\n",
}
_CONNECTED = (ClientState.HANDSHAKING, ClientState.AUTHENTICATING, ClientState.ESTABLISHED)


class LinkDelivery(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="mcptool-link-"))
        self.journal = self.dir / "journal.jsonl"
        self.ledger = JournalLedger(self.journal)
        self.now = 0.0
        self.window = 1
        self.client = self.new_client()
        self.server: ServerConnection | None = None
        self.to_hub = bytearray()
        self.to_node = bytearray()
        self.sent: list[int] = []  # datum numbers, in the order the node sent them
        self.pending: dict[int, int] = {}  # msg_id -> datum, not yet acknowledged
        self.resendable: set[int] = set()
        self.app: list[int] = []  # what the hub's application got: the journal's lines
        self.counter = 0

    @initialize(window=st.integers(1, 6))
    def start(self, window: int) -> None:
        self.window = window
        self.client.connect(self.now)
        self.open_if_asked()

    def teardown(self) -> None:
        self.ledger.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ the "drivers"

    def new_client(self) -> ClientConnection:
        return ClientConnection(
            NODE, KEY, backoff=Backoff(initial=0.5, jitter=0.0, maximum=2.0), outbox_capacity=10_000
        )

    @property
    def connected(self) -> bool:
        return self.server is not None

    def open_if_asked(self) -> None:
        if self.client.state is ClientState.CONNECTING and self.server is None:
            self.server = ServerConnection(
                {NODE: KEY},
                self.now,
                ledger=self.ledger,
                heartbeat_interval=1.0,
                window=self.window,
            )
            self.client.connection_made(self.now)
            self.after_client()

    def after_client(self) -> None:
        """What a node's driver does after each input: acks to the app, bytes out."""
        for event in self.client.events():
            if isinstance(event, Acknowledged):
                for msg_id in [m for m in self.pending if m <= event.msg_id]:
                    del self.pending[msg_id]
        out = self.client.data_to_send()
        if self.server is not None and self.client.state not in _CONNECTED:
            self.abort()
        elif out:
            self.to_hub += out

    def feed_hub(self, data: bytes) -> None:
        """What LinkServer does with one read (mcptool/link/server.py, _Connection)."""
        assert self.server is not None
        failed = False
        try:
            self.server.receive_data(data, self.now)
        except Exception:
            # asyncio aborts a connection whose data_received raised; LinkServer then
            # still delivers what the machine had queued (connection_lost -> _process).
            failed = True
        self.after_hub()
        if failed:
            self.abort()

    def after_hub(self) -> None:
        assert self.server is not None
        delivered = False
        for event in self.server.events():
            if isinstance(event, DataReceived):
                self.ledger.record(NODE, event.seq, event.body)  # on_data
                self.app.append(int(event.body))
                delivered = True
        if delivered:
            self.ledger.flush()  # before_ack: nothing is acknowledged unrecorded
        out = self.server.data_to_send()
        if out:
            self.to_node += out
        if self.server.state.value == "closed":
            self.abort()

    def abort(self) -> None:
        """The connection is gone: bytes in flight are lost both ways."""
        server, self.server = self.server, None
        self.to_hub.clear()
        self.to_node.clear()
        if server is not None:
            server.connection_lost(self.now, "aborted")
            for event in server.events():
                assert not isinstance(event, DataReceived), "queued after the end"
        if self.client.state in _CONNECTED:
            self.client.connection_lost(self.now, "aborted")
        self.client.data_to_send()
        for event in self.client.events():
            if isinstance(event, Acknowledged):
                for msg_id in [m for m in self.pending if m <= event.msg_id]:
                    del self.pending[msg_id]

    # ------------------------------------------------------------------ rules

    @rule(count=st.integers(1, 5))
    def send(self, count: int) -> None:
        for _ in range(count):
            datum = self.counter
            self.counter += 1
            self.pending[self.client.send_data(str(datum).encode(), self.now)] = datum
            self.sent.append(datum)
        self.after_client()

    @precondition(lambda self: self.connected)
    @rule(size=st.integers(1, 200))
    def bytes_reach_the_hub(self, size: int) -> None:
        chunk = bytes(self.to_hub[:size])
        del self.to_hub[:size]
        self.feed_hub(chunk)

    @precondition(lambda self: self.connected)
    @rule(size=st.integers(1, 200))
    def bytes_reach_the_node(self, size: int) -> None:
        chunk = bytes(self.to_node[:size])
        del self.to_node[:size]
        self.client.receive_data(chunk, self.now)
        self.after_client()

    @precondition(lambda self: self.connected)
    @rule()
    def connection_aborts(self) -> None:
        self.abort()

    @precondition(lambda self: self.connected)
    @rule(kind=st.sampled_from(sorted(MALFORMED)))
    def node_sends_a_malformed_frame(self, kind: str) -> None:
        # Appended behind whole frames (the node writes whole frames), like a hostile
        # node writing it between its DATA; the hub may get it in the same read as them.
        self.to_hub += MALFORMED[kind]

    @rule(seconds=st.floats(0.1, 4.0))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        if self.server is not None:
            self.server.tick(self.now)
            self.after_hub()
        self.client.tick(self.now)
        self.after_client()
        self.open_if_asked()

    @rule(crash=st.booleans())
    def hub_restarts(self, crash: bool) -> None:
        self.abort()
        # A crash loses what the hub wrote to the journal but had not flushed to the OS.
        durable = self.journal.stat().st_size if self.journal.exists() else 0
        self.ledger.close()
        if crash:
            with self.journal.open("r+b") as file:
                file.truncate(durable)
        self.ledger = JournalLedger(self.journal)
        self.app = [int(json.loads(line)["data"]) for line in self.lines()]

    @rule()
    def node_restarts(self) -> None:
        # A new process of the node, with the unacknowledged data its spool still holds.
        self.abort()
        queue = [self.pending[m] for m in sorted(self.pending)]
        self.resendable.update(queue)
        self.client = self.new_client()
        self.pending = {self.client.send_data(str(d).encode(), self.now): d for d in queue}
        self.client.connect(self.now)
        self.open_if_asked()

    @rule()
    def network_heals(self) -> None:
        for _ in range(200):
            if not self.pending and self.client.state is ClientState.ESTABLISHED:
                break
            if self.server is None:
                deadline = self.client.next_deadline()
                assert deadline is not None
                self.now = max(self.now, deadline)
                self.client.tick(self.now)
                self.after_client()
                self.open_if_asked()
                continue
            if self.to_hub:
                self.feed_hub(bytes(self.to_hub))
                self.to_hub.clear()
            elif self.to_node:
                chunk = bytes(self.to_node)
                self.to_node.clear()
                self.client.receive_data(chunk, self.now)
                self.after_client()
            else:
                self.time_passes(0.5)
        assert not self.pending, f"never acknowledged: {sorted(self.pending.values())}"
        assert self.first_deliveries() == self.sent

    # ------------------------------------------------------------------ the model

    def lines(self) -> list[bytes]:
        return self.journal.read_bytes().splitlines() if self.journal.exists() else []

    def first_deliveries(self) -> list[int]:
        seen: set[int] = set()
        first: list[int] = []
        for datum in self.app:
            if datum in seen:
                assert datum in self.resendable, f"datum {datum} delivered twice: {self.app}"
                continue
            seen.add(datum)
            first.append(datum)
        return first

    @invariant()
    def each_datum_once_in_order(self) -> None:
        first = self.first_deliveries()
        assert first == self.sent[: len(first)], f"out of order or invented: {self.app}"


LinkDelivery.TestCase.settings = settings(max_examples=250, stateful_step_count=50, deadline=None)
test_link_delivery = LinkDelivery.TestCase
