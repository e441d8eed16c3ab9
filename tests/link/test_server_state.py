"""The hub machine: handshake, refusal of bad peers, heartbeat, dedupe, on a fake clock."""

from __future__ import annotations

import pytest

from mcptool.frame import (
    Ack,
    Auth,
    Challenge,
    Close,
    Data,
    Event,
    Frame,
    FrameDecoder,
    Hello,
    MessageType,
    Ping,
    Pong,
    Reject,
    RequestEnvelope,
    ResponseEnvelope,
    encode_frame,
    parse_message,
)
from mcptool.link import (
    SERVER_TRANSITIONS,
    CloseCode,
    ErrorCode,
    LinkStateError,
    MemoryLedger,
    RejectCode,
    ServerConnection,
    ServerState,
    auth_mac,
)
from mcptool.link.events import (
    CloseTransport,
    DataReceived,
    HandshakeFailed,
    RequestReceived,
    SessionEstablished,
    StateChanged,
)
from tests.link.conftest import KEY, NODE

S = ServerState
CLIENT_NONCE = b"c" * 16
SERVER_NONCE = b"s" * 16


def frames(data: bytes) -> list:
    return [parse_message(f) for f in FrameDecoder().feed(data)]


def hub(**options: object) -> ServerConnection:
    options.setdefault("heartbeat_interval", 1.0)
    return ServerConnection(
        {NODE: KEY},
        0.0,
        nonce=lambda: SERVER_NONCE,
        session_id=lambda: b"i" * 16,
        **options,  # type: ignore[arg-type]
    )


def mac(key: bytes = KEY, server_nonce: bytes = SERVER_NONCE, node: str = NODE) -> bytes:
    return auth_mac(
        key,
        client_nonce=CLIENT_NONCE,
        server_nonce=server_nonce,
        version=1,
        offered=(1,),
        node_id=node,
    )


def established(**options: object) -> ServerConnection:
    server = hub(**options)
    server.receive_data(Hello(NODE, (1,), CLIENT_NONCE).encode(), 0.0)
    server.receive_data(Auth(mac()).encode(), 0.0)
    assert server.state is S.ESTABLISHED
    server.data_to_send()
    server.events()
    return server


def test_hello_is_answered_with_a_challenge_for_the_highest_common_version() -> None:
    server = hub(versions={1, 2, 3})
    server.receive_data(Hello(NODE, (2, 1), CLIENT_NONCE).encode(), 0.0)
    assert frames(server.data_to_send()) == [Challenge(2, SERVER_NONCE)]
    assert server.state is S.CHALLENGED


def test_no_common_version_is_rejected_with_the_versions_named() -> None:
    server = hub()
    server.receive_data(Hello(NODE, (9,), CLIENT_NONCE).encode(), 0.0)
    (reject,) = frames(server.data_to_send())
    assert reject.code == RejectCode.UNSUPPORTED_VERSION
    assert "hub speaks version 1, client offered 9" in reject.reason
    assert server.state is S.CLOSED


def test_a_correct_auth_is_accepted_followed_by_the_resume_ack() -> None:
    ledger = MemoryLedger()
    ledger.advance(NODE, 41)
    server = hub(ledger=ledger)
    server.receive_data(Hello(NODE, (1,), CLIENT_NONCE).encode(), 0.0)
    server.data_to_send()
    server.receive_data(Auth(mac()).encode(), 0.0)
    accept, ack = frames(server.data_to_send())
    assert accept.session_id == b"i" * 16
    assert (accept.heartbeat_ms, accept.dead_after, accept.window) == (1000, 3, 256)
    assert ack == Ack(41)
    assert any(isinstance(e, SessionEstablished) for e in server.events())


@pytest.mark.parametrize(
    ("node", "key", "why"),
    [(NODE, b"w" * 32, "wrong key"), ("stranger", KEY, "unknown node id")],
)
def test_a_wrong_key_or_unknown_node_is_rejected_with_the_same_answer(
    node: str, key: bytes, why: str
) -> None:
    server = hub()
    server.receive_data(Hello(node, (1,), CLIENT_NONCE).encode(), 0.0)
    assert isinstance(frames(server.data_to_send())[0], Challenge)  # no hint either way
    server.receive_data(Auth(mac(key, node=node)).encode(), 0.0)
    assert frames(server.data_to_send()) == [
        Reject(RejectCode.AUTHENTICATION_FAILED, "authentication failed")
    ]
    failed = [e for e in server.events() if isinstance(e, HandshakeFailed)]
    assert why in failed[0].reason
    assert server.state is S.CLOSED


def test_a_replayed_auth_fails_because_the_hub_nonce_is_fresh() -> None:
    first = ServerConnection({NODE: KEY}, 0.0)  # real random nonces
    second = ServerConnection({NODE: KEY}, 0.0)
    hello = Hello(NODE, (1,), CLIENT_NONCE).encode()
    first.receive_data(hello, 0.0)
    (challenge,) = frames(first.data_to_send())
    recorded = Auth(mac(server_nonce=challenge.nonce)).encode()
    first.receive_data(recorded, 0.0)
    assert first.state is S.ESTABLISHED
    # The eavesdropper replays the whole exchange on a new connection.
    second.receive_data(hello, 0.0)
    second.data_to_send()
    second.receive_data(recorded, 0.0)
    assert second.state is S.CLOSED
    assert frames(second.data_to_send())[0].code == RejectCode.AUTHENTICATION_FAILED


@pytest.mark.parametrize(
    "data",
    [
        Hello(NODE, (1,), CLIENT_NONCE).encode() * 2,  # a HELLO flood on one connection
        Ping(1).encode(),  # session traffic before authenticating
        b"GET / HTTP/1.1\r\n\r\n",  # garbage
        bytes([0x5A, 1, 0xFF, 0xFF, 0x01]),  # a frame far over the pre-auth limit
    ],
    ids=["second-hello", "ping-first", "garbage", "oversized"],
)
def test_an_unauthenticated_peer_that_misbehaves_is_closed_at_once(data: bytes) -> None:
    server = hub()
    server.receive_data(data, 0.0)
    assert server.state is S.CLOSED
    assert any(isinstance(e, CloseTransport) for e in server.events())


def test_the_pre_auth_frame_limit_is_lifted_once_authenticated() -> None:
    server = established()
    server.receive_data(Data(1, b"x" * 4000).encode(), 0.0)
    assert next(e for e in server.events() if isinstance(e, DataReceived)).body == b"x" * 4000


def test_an_oversized_frame_in_a_session_closes_it_with_a_protocol_error() -> None:
    server = established(max_frame=1024)
    server.receive_data(Data(1, b"x" * 2000).encode(), 0.0)
    assert server.state is S.CLOSED
    (close,) = frames(server.data_to_send())
    assert close.code == CloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize("sent", [b"", Hello(NODE, (1,), CLIENT_NONCE).encode(), b"\x5a\x01"])
def test_a_slow_handshake_is_dropped_at_the_deadline(sent: bytes) -> None:
    server = hub(handshake_timeout=2.0)
    server.receive_data(sent, 0.5)
    server.tick(1.999)
    assert server.state is not S.CLOSED
    assert server.next_deadline() == 2.0
    server.tick(2.0)
    assert server.state is S.CLOSED
    assert frames(server.data_to_send())[-1].code == CloseCode.HANDSHAKE_TIMEOUT


@pytest.mark.parametrize("sent", [b"", Hello(NODE, (1,), CLIENT_NONCE).encode()[:-1]])
def test_a_peer_without_a_complete_hello_is_cut_at_the_shorter_hello_deadline(
    sent: bytes,
) -> None:
    # Idle and byte-a-time sockets are how strangers hold handshake slots: they get
    # hello_timeout, and only a peer that said who it is gets the whole handshake_timeout.
    server = hub(handshake_timeout=5.0, hello_timeout=0.5)
    server.receive_data(sent, 0.1)
    assert server.next_deadline() == 0.5
    server.tick(0.5)
    assert server.state is S.CLOSED
    assert frames(server.data_to_send())[-1].code == CloseCode.HANDSHAKE_TIMEOUT
    (failed,) = [e for e in server.events() if isinstance(e, HandshakeFailed)]
    assert failed.kind == "timeout" and "no complete HELLO within 0.5 s" in failed.reason


def test_after_its_hello_a_peer_has_the_whole_handshake_deadline() -> None:
    server = hub(handshake_timeout=5.0, hello_timeout=0.5)
    server.receive_data(Hello(NODE, (1,), CLIENT_NONCE).encode(), 0.1)
    server.tick(1.0)
    assert server.state is S.CHALLENGED and server.next_deadline() == 5.0


def test_a_stranger_turned_away_for_a_newer_one_gets_reject_busy() -> None:
    server = hub()
    server.refuse_busy("turned away for a newer connection")
    assert server.state is S.CLOSED
    assert frames(server.data_to_send()) == [Reject(RejectCode.BUSY, "hub busy, try later")]
    (failed,) = [e for e in server.events() if isinstance(e, HandshakeFailed)]
    assert failed.kind == "busy"
    with pytest.raises(LinkStateError, match="only in a handshake"):
        established().refuse_busy("no")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"GET / HTTP/1.1\r\n", "bad frame"),
        (Hello(NODE, (1,), CLIENT_NONCE).encode() * 2, "bad handshake"),
        (Hello(NODE, (9,), CLIENT_NONCE).encode(), "no common version"),
        (Hello("nobody", (1,), CLIENT_NONCE).encode() + Auth(mac(node="nobody")).encode(),
         "unknown node"),
        (Hello(NODE, (1,), CLIENT_NONCE).encode() + Auth(mac(key=b"w" * 32)).encode(),
         "wrong key"),
    ],
)  # fmt: skip
def test_every_failed_handshake_says_what_kind_of_failure_it_was(data: bytes, kind: str) -> None:
    server = hub()
    server.receive_data(data, 0.0)
    assert [e.kind for e in server.events() if isinstance(e, HandshakeFailed)] == [kind]


def test_a_peer_that_leaves_during_the_handshake_is_a_failed_handshake_too() -> None:
    server = hub()
    server.connection_lost(0.1, "reset by peer")
    (failed,) = [e for e in server.events() if isinstance(e, HandshakeFailed)]
    assert failed.kind == "gone" and "reset by peer" in failed.reason


def test_the_hub_pings_an_idle_node_and_declares_it_dead_after_n_intervals() -> None:
    server = established()
    server.tick(1.0)
    (ping,) = frames(server.data_to_send())
    assert isinstance(ping, Ping)
    server.tick(2.0)
    server.tick(2.999)
    assert server.state is S.ESTABLISHED
    server.tick(3.0)
    assert server.state is S.CLOSED
    assert frames(server.data_to_send())[-1].code == CloseCode.PEER_DEAD


def test_duplicates_are_acked_but_not_delivered_again() -> None:
    server = established()
    server.receive_data(b"".join(Data(n, b"%d" % n).encode() for n in (1, 2, 3)), 0.0)
    server.receive_data(b"".join(Data(n, b"%d" % n).encode() for n in (2, 3, 4)), 0.0)
    delivered = [e.seq for e in server.events() if isinstance(e, DataReceived)]
    assert delivered == [1, 2, 3, 4]
    assert frames(server.data_to_send()) == [Ack(3), Ack(4)]


def test_one_cumulative_ack_answers_a_whole_read() -> None:
    server = established()
    server.receive_data(b"".join(Data(n, b"").encode() for n in range(1, 101)), 0.0)
    assert frames(server.data_to_send()) == [Ack(100)]


def test_a_malformed_event_behind_data_is_answered_and_the_data_still_counts() -> None:
    ledger = MemoryLedger()
    server = established(ledger=ledger)
    hostile = encode_frame(Frame(MessageType.EVENT, b"[" * 5000))
    server.receive_data(b"".join(Data(n, b"").encode() for n in (1, 2, 3)) + hostile, 0.0)
    assert [e.seq for e in server.events() if isinstance(e, DataReceived)] == [1, 2, 3]
    assert ledger.last(NODE) == 3 and server.state is S.ESTABLISHED
    error, ack = frames(server.data_to_send())
    assert error.code == ErrorCode.BAD_PAYLOAD and "nested deeper than 64" in error.message
    assert ack == Ack(3)


def test_the_ledger_counts_what_was_queued_even_when_a_frame_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A bug in parsing one frame must not leave data queued for delivery that the ledger
    # does not count: the driver delivers what is queued, and the node would resend it.
    def broken(payload: bytes) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Event, "parse", broken)
    ledger = MemoryLedger()
    server = established(ledger=ledger)
    with pytest.raises(RuntimeError):
        server.receive_data(
            b"".join(Data(n, b"").encode() for n in (1, 2)) + Event({}).encode(), 0.0
        )
    assert [e.seq for e in server.events() if isinstance(e, DataReceived)] == [1, 2]
    assert ledger.last(NODE) == 2


def test_the_ledger_is_shared_so_a_replaced_session_cannot_deliver_twice() -> None:
    ledger = MemoryLedger()
    old, new = established(ledger=ledger), established(ledger=ledger)
    new.receive_data(Data(1, b"a").encode(), 0.0)
    old.receive_data(Data(1, b"a").encode(), 0.0)
    assert not [e for e in old.events() if isinstance(e, DataReceived)]


def test_requests_are_handed_to_the_driver_and_answered_with_response_frames() -> None:
    server = established()
    payload = RequestEnvelope("status").to_json()
    server.receive_data(b"\x5a\x01" + len(payload).to_bytes(2, "big") + b"\x30" + payload, 0.0)
    assert next(e for e in server.events() if isinstance(e, RequestReceived)).payload == payload
    response = ResponseEnvelope(200).to_json()
    assert server.send_response(response)
    assert FrameDecoder().feed(server.data_to_send())[0].payload == response


def test_a_node_close_is_answered_and_ends_the_connection() -> None:
    server = established()
    server.receive_data(Close(0, "bye").encode(), 0.0)
    assert server.state is S.CLOSED
    assert frames(server.data_to_send())[0].code == CloseCode.NORMAL


def test_ping_is_answered_with_pong() -> None:
    server = established()
    server.receive_data(Ping(7).encode(), 0.0)
    assert frames(server.data_to_send()) == [Pong(7)]


def test_responding_before_authentication_is_an_illegal_operation() -> None:
    with pytest.raises(LinkStateError):
        hub().send_response(b"{}")


def test_after_close_a_response_is_dropped_quietly() -> None:
    server = established()
    server.close()
    assert server.send_response(b"{}") is False


def test_every_transition_in_the_hub_table_is_taken_by_some_scenario() -> None:
    taken = set()
    scenarios = [
        lambda s: s.receive_data(b"garbage", 0.0),  # AWAIT_HELLO -> CLOSED
        lambda s: (
            s.receive_data(Hello(NODE, (1,), CLIENT_NONCE).encode(), 0.0),
            s.tick(60.0),  # CHALLENGED -> CLOSED
        ),
        lambda s: (
            s.receive_data(Hello(NODE, (1,), CLIENT_NONCE).encode(), 0.0),
            s.receive_data(Auth(mac()).encode(), 0.0),
            s.connection_lost(1.0),  # ESTABLISHED -> CLOSED
        ),
    ]
    for scenario in scenarios:
        server = hub()
        scenario(server)
        taken |= {(e.old, e.new) for e in server.events() if isinstance(e, StateChanged)}
    table = {(old, new) for old, targets in SERVER_TRANSITIONS.items() for new in targets}
    assert taken == table
