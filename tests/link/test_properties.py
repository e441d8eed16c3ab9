"""Property tests: random event orders never put a machine in an undefined state, and a
link that keeps breaking still delivers every frame exactly once, in order."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mcptool.frame import (
    Accept,
    Ack,
    Auth,
    Challenge,
    Close,
    Data,
    ErrorMessage,
    Event,
    Hello,
    Ping,
    Pong,
    Reject,
    RequestEnvelope,
)
from mcptool.link import (
    CLIENT_TRANSITIONS,
    SERVER_TRANSITIONS,
    Backoff,
    ClientConnection,
    ClientState,
    LinkClosed,
    LinkStateError,
    OutboxFull,
    ServerConnection,
    ServerState,
)
from mcptool.link.events import Acknowledged, StateChanged
from tests.link.conftest import KEY, NODE, Wire

PEER_BYTES = [
    Challenge(1, b"s" * 16).encode(),
    Challenge(2, b"s" * 16).encode(),
    Accept(b"i" * 16, 1000, 3, 8, b"p" * 32).encode(),
    Reject(1, "no").encode(),
    Reject(3, "busy").encode(),
    Ping(1).encode(),
    Pong(1).encode(),
    Ack(0).encode(),
    Ack(5).encode(),
    Close(1, "bye").encode(),
    Event({"a": 1}).encode(),
    ErrorMessage(400, "bad").encode(),
    Data(1, b"x").encode(),
    Hello(NODE, (1,), b"c" * 16).encode(),
    Auth(b"m" * 32).encode(),
    b"\x5a\x01\x00\x31" + b"\x31{}",  # a RESPONSE without a traceId, truncated header
    b"\x5a\x01\x00\x02\x31{}",
    b"garbage",
    b"\x5a",
    b"\x5a\x01\xff\xff\x20",
]

client_ops = st.lists(
    st.one_of(
        st.tuples(st.just("connect")),
        st.tuples(st.just("made")),
        st.tuples(st.just("failed")),
        st.tuples(st.just("lost")),
        st.tuples(st.just("receive"), st.sampled_from(PEER_BYTES)),
        st.tuples(st.just("receive"), st.binary(max_size=40)),
        st.tuples(st.just("tick"), st.floats(0, 30)),
        st.tuples(st.just("send")),
        st.tuples(st.just("request")),
        st.tuples(st.just("close")),
        st.tuples(st.just("ping")),
        st.tuples(st.just("event")),
    ),
    max_size=40,
)


def check_transitions(events: list, table: dict) -> None:
    for event in events:
        if isinstance(event, StateChanged):
            assert event.new in table[event.old], event


@settings(max_examples=300, deadline=None)
@given(client_ops)
def test_random_event_orders_keep_the_client_in_a_defined_state(ops: list[tuple]) -> None:
    client = ClientConnection(NODE, KEY, outbox_capacity=3)
    now = 0.0
    for op in ops:
        try:
            match op:
                case ("connect",):
                    client.connect(now)
                case ("made",):
                    client.connection_made(now)
                case ("failed",):
                    client.connection_failed(now, "refused")
                case ("lost",):
                    client.connection_lost(now)
                case ("receive", data):
                    client.receive_data(data, now)
                case ("tick", dt):
                    now += dt
                    client.tick(now)
                case ("send",):
                    client.send_data(b"x", now)
                case ("request",):
                    client.send_request("a", None, now, timeout=5)
                case ("close",):
                    client.close(now)
                case ("ping",):
                    client.ping(now)
                case ("event",):
                    client.send_event({"e": 1})
        except (LinkStateError, LinkClosed, OutboxFull):
            pass
        assert isinstance(client.state, ClientState)
        check_transitions(client.events(), CLIENT_TRANSITIONS)
        client.data_to_send()
        deadline = client.next_deadline()
        if client.state in (ClientState.IDLE, ClientState.CLOSED):
            assert deadline is None or client._requests
        else:
            assert deadline is not None


server_ops = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), st.sampled_from(PEER_BYTES)),
        st.tuples(st.just("receive"), st.binary(max_size=40)),
        st.tuples(st.just("tick"), st.floats(0, 10)),
        st.tuples(st.just("lost")),
        st.tuples(st.just("respond")),
        st.tuples(st.just("close")),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(server_ops, st.booleans())
def test_random_event_orders_keep_the_hub_in_a_defined_state(
    ops: list[tuple], authenticate: bool
) -> None:
    server = ServerConnection({NODE: KEY}, 0.0, heartbeat_interval=1.0)
    now = 0.0
    if authenticate:
        wire = Wire(ClientConnection(NODE, KEY), {NODE: KEY})
        wire.establish()
        server = wire.server  # type: ignore[assignment]
    for op in ops:
        try:
            match op:
                case ("receive", data):
                    server.receive_data(data, now)
                case ("tick", dt):
                    now += dt
                    server.tick(now)
                case ("lost",):
                    server.connection_lost(now)
                case ("respond",):
                    server.send_response(b"{}")
                case ("close",):
                    server.close()
        except LinkStateError:
            pass
        assert isinstance(server.state, ServerState)
        check_transitions(server.events(), SERVER_TRANSITIONS)
        server.data_to_send()
        assert (server.next_deadline() is None) == (server.state is ServerState.CLOSED)


fault_ops = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 5)),
        st.tuples(st.just("shuttle")),
        st.tuples(st.just("half")),  # frames reach the hub, the connection dies before answers
        st.tuples(st.just("drop")),
        st.tuples(st.just("wait"), st.floats(0.1, 5)),
        st.tuples(st.just("restart-client")),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(fault_ops, st.integers(1, 8))
def test_a_link_that_keeps_breaking_delivers_every_frame_exactly_once_in_order(
    ops: list[tuple], window: int
) -> None:
    def new_client() -> ClientConnection:
        return ClientConnection(NODE, KEY, backoff=Backoff(jitter=0.0, maximum=2.0))

    wire = Wire(new_client(), {NODE: KEY}, window=window, heartbeat_interval=1.0)
    wire.client.connect(wire.now)
    sent: list[bytes] = []
    lost_with_client: list[bytes] = []
    counter = 0

    def reconnect_if_asked() -> None:
        if wire.client.state is ClientState.CONNECTING and wire.server is None:
            wire.open()

    for op in ops:
        match op:
            case ("send", n):
                for _ in range(n):
                    body = json.dumps(counter).encode()
                    counter += 1
                    try:
                        wire.client.send_data(body, wire.now)
                        sent.append(body)
                    except OutboxFull:
                        pass
            case ("shuttle",):
                reconnect_if_asked()
                wire.shuttle()
            case ("half",):
                reconnect_if_asked()
                wire.shuttle(to_client=False)
                if wire.server is not None:
                    wire.drop()
            case ("drop",):
                if wire.server is not None:
                    wire.drop()
            case ("wait", dt):
                wire.advance(dt)
                if wire.client.state is not ClientState.ESTABLISHED and wire.server is not None:
                    wire.drop()
                reconnect_if_asked()
            case ("restart-client",):
                # A restarted process loses what it had not yet got acknowledged.
                if wire.server is not None:
                    wire.drop()
                pending = len(wire.client.outbox)
                lost_with_client.extend(sent[len(sent) - pending :] if pending else [])
                sent = sent[: len(sent) - pending]
                wire.client = new_client()
                wire.client.connect(wire.now)
    # Heal the network and let everything through.
    for _ in range(50):
        if not len(wire.client.outbox):
            break
        if wire.client.state is not ClientState.ESTABLISHED:
            if wire.server is not None:
                wire.drop()
            wire.advance(3.0)
            reconnect_if_asked()
        wire.shuttle()
    assert len(wire.client.outbox) == 0
    delivered = [b for b in wire.delivered if b not in lost_with_client]
    assert delivered == sent
    assert len(set(wire.delivered)) == len(wire.delivered)
    assert wire.events_of(Acknowledged) or not sent


def test_the_request_envelope_used_in_the_pool_is_valid() -> None:
    assert json.loads(RequestEnvelope("a").to_json())["payload"]["action"] == "a"
