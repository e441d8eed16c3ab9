"""The client machine: every transition and every timer, on a fake clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcptool.frame import (
    Accept,
    Challenge,
    Close,
    Data,
    ErrorMessage,
    Frame,
    FrameDecoder,
    Hello,
    MessageType,
    Ping,
    Pong,
    Reject,
    Response,
    ResponseEnvelope,
    encode_frame,
    parse_message,
)
from mcptool.link import (
    CLIENT_TRANSITIONS,
    AuthenticationFailed,
    Backoff,
    ClientConnection,
    ClientState,
    ErrorCode,
    LinkClosed,
    LinkStateError,
    OutboxFull,
    RejectCode,
    VersionMismatch,
    accept_proof,
)
from mcptool.link.client_state import DATA_HEAD
from mcptool.link.events import (
    Acknowledged,
    CloseTransport,
    ConnectRequested,
    LinkFailed,
    PongReceived,
    RequestFailed,
    ResponseReceived,
    SessionEstablished,
    StateChanged,
)
from tests.link.conftest import KEY, NODE, Wire

S = ClientState


def frames(data: bytes) -> list:
    return [parse_message(f) for f in FrameDecoder().feed(data)]


def states(wire: Wire) -> list[ClientState]:
    return [e.new for e in wire.events_of(StateChanged)]


def fixed_backoff() -> Backoff:
    return Backoff(jitter=0.0, rng=random.Random(1))


def test_connect_moves_idle_to_connecting_and_asks_the_driver_to_connect() -> None:
    client = ClientConnection(NODE, KEY)
    client.connect(0.0)
    events = client.events()
    assert client.state is S.CONNECTING
    assert events[-1] == ConnectRequested(attempt=1)


def test_connection_made_sends_hello_with_node_versions_and_a_fresh_nonce() -> None:
    nonces = iter([b"A" * 16, b"B" * 16])
    client = ClientConnection(NODE, KEY, nonce=lambda: next(nonces))
    client.connect(0.0)
    client.connection_made(0.0)
    (hello,) = frames(client.data_to_send())
    assert hello == Hello(NODE, (1,), b"A" * 16)
    assert client.state is S.HANDSHAKING


def test_full_handshake_walks_every_state_to_established(wire: Wire) -> None:
    wire.establish()
    assert states(wire) == [S.CONNECTING, S.HANDSHAKING, S.AUTHENTICATING, S.ESTABLISHED]
    (session,) = wire.events_of(SessionEstablished)
    assert (session.heartbeat_interval, session.dead_after, session.resume_seq) == (1.0, 3, 0)


def _challenged_client() -> ClientConnection:
    client = ClientConnection(NODE, KEY, nonce=lambda: b"C" * 16, backoff=fixed_backoff())
    client.connect(0.0)
    client.connection_made(0.0)
    client.data_to_send()
    client.receive_data(Challenge(1, b"S" * 16).encode(), 0.0)
    client.data_to_send()
    client.events()
    return client


def test_accept_with_a_wrong_proof_fails_for_good_as_authentication_failed() -> None:
    client = _challenged_client()
    client.receive_data(Accept(b"i" * 16, 1000, 3, 64, b"\0" * 32).encode(), 0.0)
    events = client.events()
    assert client.state is S.CLOSED
    failed = next(e for e in events if isinstance(e, LinkFailed))
    assert isinstance(failed.error, AuthenticationFailed)
    assert "authentication failed" in str(failed.error)
    assert any(isinstance(e, CloseTransport) for e in events)


def test_accept_with_the_right_proof_establishes_the_session() -> None:
    client = _challenged_client()
    proof = accept_proof(
        KEY,
        client_nonce=b"C" * 16,
        server_nonce=b"S" * 16,
        node_id=NODE,
        session_id=b"i" * 16,
        heartbeat_ms=1000,
        dead_after=3,
        window=64,
    )
    client.receive_data(Accept(b"i" * 16, 1000, 3, 64, proof).encode(), 0.0)
    assert client.state is S.ESTABLISHED
    assert client.window == 64


def test_a_proof_for_other_session_parameters_is_refused() -> None:
    # An attacker who rewrites the heartbeat in ACCEPT breaks the proof.
    client = _challenged_client()
    proof = accept_proof(
        KEY,
        client_nonce=b"C" * 16,
        server_nonce=b"S" * 16,
        node_id=NODE,
        session_id=b"i" * 16,
        heartbeat_ms=1000,
        dead_after=3,
        window=64,
    )
    client.receive_data(Accept(b"i" * 16, 60_000, 3, 64, proof).encode(), 0.0)
    assert client.state is S.CLOSED


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (RejectCode.AUTHENTICATION_FAILED, AuthenticationFailed),
        (RejectCode.UNSUPPORTED_VERSION, VersionMismatch),
    ],
)
def test_a_reject_that_retrying_cannot_fix_closes_the_link(code: int, error: type) -> None:
    client = _challenged_client()
    client.receive_data(Reject(code, "no").encode(), 0.0)
    failed = [e for e in client.events() if isinstance(e, LinkFailed)]
    assert client.state is S.CLOSED
    assert isinstance(failed[0].error, error)


def test_a_busy_hub_sends_the_client_to_backoff_not_to_closed() -> None:
    client = _challenged_client()
    client.receive_data(Reject(RejectCode.BUSY, "busy").encode(), 0.0)
    assert client.state is S.BACKOFF
    assert client.next_deadline() == pytest.approx(1.0)


def test_a_challenge_for_a_version_not_offered_is_a_version_mismatch() -> None:
    client = ClientConnection(NODE, KEY)
    client.connect(0.0)
    client.connection_made(0.0)
    client.receive_data(Challenge(7, b"S" * 16).encode(), 0.0)
    assert client.state is S.CLOSED
    assert any(
        isinstance(e, LinkFailed) and isinstance(e.error, VersionMismatch) for e in client.events()
    )


@pytest.mark.parametrize("stage", ["connecting", "handshaking", "authenticating"])
def test_the_handshake_deadline_applies_from_connect_to_accept(stage: str) -> None:
    client = ClientConnection(NODE, KEY, handshake_timeout=5.0, backoff=fixed_backoff())
    client.connect(0.0)
    if stage != "connecting":
        client.connection_made(1.0)
    if stage == "authenticating":
        client.receive_data(Challenge(1, b"S" * 16).encode(), 2.0)
    client.tick(4.999)
    assert client.state is not S.BACKOFF
    assert client.next_deadline() == 5.0
    client.tick(5.0)
    assert client.state is S.BACKOFF
    assert "handshake did not finish within 5 s" in client.events()[-1].reason


def test_backoff_elapses_into_a_new_connect_attempt() -> None:
    client = ClientConnection(NODE, KEY, backoff=fixed_backoff())
    client.connect(0.0)
    client.connection_failed(0.5, "connection refused")
    assert client.state is S.BACKOFF
    assert client.next_deadline() == pytest.approx(1.5)
    client.tick(1.4)
    assert client.state is S.BACKOFF
    client.tick(1.5)
    assert client.state is S.CONNECTING
    assert client.events()[-1] == ConnectRequested(attempt=2)


def test_backoff_grows_by_the_multiplier_while_attempts_keep_failing() -> None:
    client = ClientConnection(NODE, KEY, backoff=fixed_backoff())
    client.connect(0.0)
    now, delays = 0.0, []
    for _ in range(4):
        client.connection_failed(now, "refused")
        deadline = client.next_deadline()
        assert deadline is not None
        delays.append(round(deadline - now, 6))
        now = deadline
        client.tick(now)
    assert delays == [1.0, 1.6, 2.56, 4.096]


def test_a_stable_session_resets_the_backoff_and_a_short_one_does_not(wire: Wire) -> None:
    wire.client.backoff = fixed_backoff()
    wire.client.stable_after = 10.0
    wire.client.backoff.attempts = 5
    wire.establish()
    wire.advance(0.5)
    assert wire.client.backoff.attempts == 5  # short-lived sessions keep backing off
    for _ in range(20):
        wire.advance(0.5)
        wire.shuttle()
    assert wire.client.backoff.attempts == 0
    wire.drop()
    assert wire.client.next_deadline() == pytest.approx(wire.now + 1.0)


def test_an_idle_link_pings_after_one_interval_and_the_pong_counts_as_life(wire: Wire) -> None:
    wire.establish()
    wire.advance(0.999)
    assert wire.client.data_to_send() == b""
    wire.advance(0.001)
    (ping,) = frames(wire.client.data_to_send())
    assert isinstance(ping, Ping)
    wire.client.receive_data(Pong(ping.token).encode(), wire.now + 0.25)
    pong = [e for e in wire.client.events() if isinstance(e, PongReceived)]
    assert pong[0].rtt == pytest.approx(0.25)


def test_a_silent_hub_is_declared_dead_after_dead_after_intervals(wire: Wire) -> None:
    wire.establish()
    start = wire.now
    for _ in range(29):
        wire.advance(0.1)  # the hub hears the pings but its answers are lost
        wire.shuttle(to_client=False)
    assert wire.client.state is S.ESTABLISHED
    wire.advance(0.1)
    assert wire.client.state is S.BACKOFF
    assert wire.now - start == pytest.approx(3.0)
    assert "peer dead" in [e for e in wire.client_events if isinstance(e, StateChanged)][-1].reason


def test_any_frame_received_counts_as_life(wire: Wire) -> None:
    wire.establish()
    for _ in range(10):
        wire.advance(0.9)
        wire.client.send_data(b"x", wire.now)
        wire.shuttle()  # ACKs come back: life, so never a PING
    assert wire.client.state is S.ESTABLISHED
    assert wire.client._pings == {}


def test_data_waits_for_the_resume_ack_then_goes_out_within_the_window() -> None:
    wire = Wire(ClientConnection(NODE, KEY), {NODE: KEY}, window=2)
    wire.client.connect(0.0)
    for n in range(5):
        wire.client.send_data(b"%d" % n, 0.0)
    wire.open()
    wire.shuttle()
    assert wire.delivered == [b"0", b"1", b"2", b"3", b"4"]
    assert wire.events_of(Acknowledged)[-1] == Acknowledged(5)


def test_the_window_limits_frames_in_flight() -> None:
    wire = Wire(ClientConnection(NODE, KEY), {NODE: KEY}, window=2)
    wire.establish()
    for n in range(5):
        wire.client.send_data(b"%d" % n, 0.0)
    sent = frames(wire.client.data_to_send())
    assert [m.seq for m in sent] == [1, 2]


def test_a_full_outbox_raises_outbox_full() -> None:
    client = ClientConnection(NODE, KEY, outbox_capacity=2)
    client.connect(0.0)
    client.send_data(b"a", 0.0)
    client.send_data(b"b", 0.0)
    with pytest.raises(OutboxFull):
        client.send_data(b"c", 0.0)


def test_unacked_data_is_sent_again_after_a_reconnect_and_delivered_once(wire: Wire) -> None:
    wire.client.backoff = fixed_backoff()
    wire.establish()
    for n in range(6):
        wire.client.send_data(b"%d" % n, wire.now)
    # The hub gets all six, but the connection dies before its ACK arrives.
    wire.shuttle(to_client=False)
    wire.drop()
    wire.advance(1.0)
    assert wire.client.state is S.CONNECTING
    wire.open()
    wire.shuttle()
    assert wire.delivered == [b"%d" % n for n in range(6)]
    assert wire.events_of(Acknowledged)[-1] == Acknowledged(6)
    assert len(wire.client.outbox) == 0


def test_a_restarted_client_is_renumbered_past_the_hubs_count(wire: Wire) -> None:
    wire.establish()
    for n in range(3):
        wire.client.send_data(b"old%d" % n, wire.now)
    wire.shuttle()
    # A new process of the same node starts at seq 1 locally: the resume ACK (3) tells
    # it where the hub stands, so its first frame is 4, not a "duplicate" 1.
    fresh = ClientConnection(NODE, KEY)
    wire.client = fresh
    fresh.connect(wire.now)
    fresh.send_data(b"new", wire.now)
    wire.open()
    wire.shuttle()
    assert wire.delivered == [b"old0", b"old1", b"old2", b"new"]
    assert wire.ledger.last(NODE) == 4


def test_a_hub_that_lost_its_memory_still_gets_every_unacked_frame(wire: Wire) -> None:
    wire.client.backoff = fixed_backoff()
    wire.establish()
    wire.client.send_data(b"a", wire.now)
    wire.shuttle()
    wire.client.send_data(b"b", wire.now)
    wire.client.data_to_send()  # lost on the way
    wire.drop()
    wire.ledger = type(wire.ledger)()  # the hub restarted without its ledger
    wire.advance(1.0)
    wire.open()
    wire.shuttle()
    assert wire.delivered == [b"a", b"b"]


def test_requests_queue_while_down_and_time_out_at_their_deadline() -> None:
    client = ClientConnection(NODE, KEY)
    client.connect(0.0)
    trace = client.send_request("status", None, 0.0, timeout=2.0)
    assert client.next_deadline() == 2.0
    client.tick(2.0)
    failed = [e for e in client.events() if isinstance(e, RequestFailed)]
    assert failed[0].trace_id == trace
    assert "no response within 2 s" in str(failed[0].error)


def test_a_sent_request_fails_when_the_connection_drops(wire: Wire) -> None:
    wire.establish()
    trace = wire.client.send_request("status", None, wire.now)
    wire.client.data_to_send()
    wire.drop()
    failed = wire.events_of(RequestFailed)
    assert failed[0].trace_id == trace
    assert "connection lost" in str(failed[0].error)


def response_frame(payload: bytes) -> bytes:
    return encode_frame(Frame(MessageType.RESPONSE, payload))


def test_a_response_is_matched_to_its_request_by_the_envelopes_trace_id(wire: Wire) -> None:
    wire.establish()
    first = wire.client.send_request("a", None, wire.now)
    second = wire.client.send_request("b", None, wire.now)
    wire.client.data_to_send()
    answer = ResponseEnvelope(200, "OK", "for b", 1, trace_id=second)
    wire.client.receive_data(Response(answer).encode(), wire.now)
    assert wire.events_of(ResponseReceived) == [ResponseReceived(second, answer)]
    assert wire.client.next_deadline() is not None  # `first` still waits for its answer
    assert first != second


def test_a_response_with_an_unknown_or_null_trace_id_answers_nothing(wire: Wire) -> None:
    wire.establish()
    trace = wire.client.send_request("a", None, wire.now, timeout=5.0)
    wire.client.data_to_send()
    for trace_id in ("someone-else", None):
        envelope = ResponseEnvelope(400, "bad request", timestamp=1, trace_id=trace_id)
        wire.client.receive_data(Response(envelope).encode(), wire.now)
    assert wire.events_of(ResponseReceived) == []
    assert wire.client.data_to_send() == b""  # well-formed: nothing to complain about
    wire.advance(5.0)
    assert [e.trace_id for e in wire.events_of(RequestFailed)] == [trace]


def test_a_broken_response_fails_the_request_it_names_and_is_reported_to_the_hub(
    wire: Wire,
) -> None:
    wire.establish()
    trace = wire.client.send_request("a", None, wire.now)
    wire.client.data_to_send()
    broken = b'{"code": 200, "message": "OK", "traceId": "%s"}' % trace.encode()
    wire.client.receive_data(response_frame(broken), wire.now)
    [failed] = wire.events_of(RequestFailed)
    assert failed.trace_id == trace
    assert "response.timestamp: missing" in str(failed.error)
    [error] = frames(wire.client.data_to_send())
    assert isinstance(error, ErrorMessage) and error.code == ErrorCode.BAD_PAYLOAD


def test_a_response_whose_trace_id_is_not_a_string_is_reported_to_the_hub(wire: Wire) -> None:
    wire.establish()
    wire.client.send_request("a", None, wire.now)
    wire.client.data_to_send()
    bad = b'{"code": 200, "message": "OK", "timestamp": 1, "traceId": 7}'
    wire.client.receive_data(response_frame(bad), wire.now)
    [error] = frames(wire.client.data_to_send())
    assert isinstance(error, ErrorMessage) and error.code == ErrorCode.BAD_PAYLOAD
    assert error.message == "response.traceId: expected str or null, got int"
    assert wire.events_of(ResponseReceived) == []


def test_close_sends_close_and_waits_for_the_hubs_close(wire: Wire) -> None:
    wire.establish()
    wire.client.close(wire.now)
    assert wire.client.state is S.CLOSING
    wire.shuttle()
    assert wire.client.state is S.CLOSED


def test_close_gives_up_waiting_after_the_close_timeout(wire: Wire) -> None:
    wire.establish()
    wire.client.close(wire.now)
    wire.advance(1.9)
    assert wire.client.state is S.CLOSING
    wire.advance(0.1)
    assert wire.client.state is S.CLOSED


@pytest.mark.parametrize("state", [S.IDLE, S.CONNECTING, S.BACKOFF])
def test_close_without_a_session_goes_straight_to_closed(state: ClientState) -> None:
    client = ClientConnection(NODE, KEY)
    if state is not S.IDLE:
        client.connect(0.0)
    if state is S.BACKOFF:
        client.connection_failed(0.0, "refused")
    client.close(0.0)
    assert client.state is S.CLOSED


def test_the_hubs_close_sends_the_client_to_backoff(wire: Wire) -> None:
    wire.establish()
    wire.client.receive_data(Close(1, "hub shutting down").encode(), wire.now)
    assert wire.client.state is S.BACKOFF
    assert "hub shutting down" in wire.events_of(StateChanged)[-1].reason


def test_garbage_from_the_hub_is_a_protocol_error_and_a_reconnect(wire: Wire) -> None:
    wire.establish()
    wire.client.receive_data(b"\x00garbage!", wire.now)
    assert wire.client.state is S.BACKOFF
    assert "protocol error" in wire.events_of(StateChanged)[-1].reason


def test_an_unexpected_message_in_the_handshake_is_a_protocol_error() -> None:
    client = ClientConnection(NODE, KEY)
    client.connect(0.0)
    client.connection_made(0.0)
    client.receive_data(Pong(1).encode(), 0.0)
    assert client.state is S.BACKOFF


def test_a_ping_from_the_hub_is_answered_with_its_token(wire: Wire) -> None:
    wire.establish()
    wire.client.receive_data(Ping(42).encode(), wire.now)
    (pong,) = frames(wire.client.data_to_send())
    assert pong == Pong(42)


@pytest.mark.parametrize(
    ("state", "call"),
    [
        (S.IDLE, lambda c: c.connection_made(0.0)),
        (S.IDLE, lambda c: c.receive_data(b"x", 0.0)),
        (S.CONNECTING, lambda c: c.connect(0.0)),
        (S.IDLE, lambda c: c.ping(0.0)),
        (S.CONNECTING, lambda c: c.send_event({})),
        (S.BACKOFF, lambda c: c.connection_made(0.0)),
    ],
)
def test_illegal_operations_raise_link_state_error(state: ClientState, call: object) -> None:
    client = ClientConnection(NODE, KEY)
    if state is not S.IDLE:
        client.connect(0.0)
    if state is S.BACKOFF:
        client.connection_failed(0.0, "refused")
    with pytest.raises(LinkStateError):
        call(client)  # type: ignore[operator]


def test_sending_on_a_closed_link_raises_link_closed() -> None:
    client = ClientConnection(NODE, KEY)
    client.close(0.0)
    with pytest.raises(LinkClosed):
        client.send_data(b"x", 0.0)


def test_a_transition_outside_the_table_raises() -> None:
    client = ClientConnection(NODE, KEY)
    with pytest.raises(LinkStateError, match="illegal transition IDLE -> ESTABLISHED"):
        client._set_state(S.ESTABLISHED, "test")


def test_frames_after_a_failure_in_the_same_read_are_not_processed(wire: Wire) -> None:
    wire.establish()
    data = Close(1, "bye").encode() + Ping(1).encode()
    wire.client.receive_data(data, wire.now)
    sent = [m.TYPE for m in frames(wire.client.data_to_send())]
    assert MessageType.PONG not in sent


def _walk(client: ClientConnection, steps: list[str]) -> set[tuple[ClientState, ClientState]]:
    wire = Wire(client, {NODE: KEY}, heartbeat_interval=1.0)
    for step in steps:
        match step:
            case "connect":
                client.connect(wire.now)
            case "made":
                wire.open()
            case "failed":
                client.connection_failed(wire.now, "refused")
            case "challenge":
                wire.shuttle(to_client=False)
                client.receive_data(Challenge(1, b"S" * 16).encode(), wire.now)
            case "bad-challenge":
                client.receive_data(Challenge(9, b"S" * 16).encode(), wire.now)
            case "busy":
                client.receive_data(Reject(RejectCode.BUSY, "busy").encode(), wire.now)
            case "auth-reject":
                client.receive_data(Reject(RejectCode.AUTHENTICATION_FAILED, "").encode(), 0)
            case "establish":
                wire.shuttle()
            case "lost":
                wire.drop()
            case "wait":
                wire.advance(5.0)
            case "close":
                client.close(wire.now)
            case "close-ack":
                wire.shuttle()
    events = wire.client_events + client.events()
    return {(e.old, e.new) for e in events if isinstance(e, StateChanged)}


EDGE_WALKS = [
    ["close"],
    ["connect", "close"],
    ["connect", "failed", "close"],
    ["connect", "failed", "wait"],
    ["connect", "made", "close"],
    ["connect", "made", "bad-challenge"],
    ["connect", "made", "lost"],
    ["connect", "made", "challenge", "busy"],
    ["connect", "made", "challenge", "auth-reject"],
    ["connect", "made", "challenge", "close"],
    ["connect", "made", "establish", "close", "close-ack"],
    ["connect", "made", "establish", "lost"],
]


def test_every_transition_in_the_client_table_is_taken_by_some_scenario() -> None:
    taken: set[tuple[ClientState, ClientState]] = set()
    for steps in EDGE_WALKS:
        taken |= _walk(ClientConnection(NODE, KEY, backoff=fixed_backoff()), steps)
    no_reconnect = ClientConnection(NODE, KEY, reconnect=False)
    taken |= _walk(no_reconnect, ["connect", "made", "establish", "lost"])
    table = {(old, new) for old, targets in CLIENT_TRANSITIONS.items() for new in targets}
    assert taken == table


@given(st.integers(0, 2**64 - 1), st.binary(max_size=300))
def test_the_fast_data_encoding_is_byte_identical_to_the_codecs(seq: int, body: bytes) -> None:
    head = DATA_HEAD.pack(0x5A, 1, len(body) + 8, int(MessageType.DATA), seq)
    assert head + body == Data(seq, body).encode()


def test_a_body_over_the_frame_limit_is_refused_before_it_can_poison_the_outbox() -> None:
    # Sent, it would make the hub drop the session, and be sent again after every reconnect.
    client = ClientConnection(NODE, KEY, max_frame=1024)
    client.connect(0.0)
    client.send_data(b"x" * 1016, 0.0)
    with pytest.raises(ValueError, match="exceeds the frame limit"):
        client.send_data(b"x" * 1017, 0.0)
