"""LinkServer over real sockets: hostile and slow peers are cut off cheaply; sessions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcptool.frame import (
    BAD_REQUEST,
    Ack,
    Auth,
    Data,
    ErrorMessage,
    Frame,
    FrameDecoder,
    Hello,
    MessageType,
    Response,
    encode_frame,
    parse_message,
)
from mcptool.link import (
    CloseCode,
    ErrorCode,
    JournalLedger,
    LinkClient,
    LinkClosed,
    LinkServer,
    RejectCode,
)
from simulators.mcp import McpPeer
from tests.link.conftest import KEY, NODE, eventually


async def raw(peer: McpPeer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*peer.address)


async def read_messages(reader: asyncio.StreamReader, timeout: float = 5.0) -> list:
    """Everything the hub sends until it closes the connection."""
    data = await asyncio.wait_for(reader.read(), timeout)
    return [parse_message(f) for f in FrameDecoder().feed(data)]


@pytest.fixture
async def strict_peer() -> AsyncIterator[McpPeer]:
    """A hub with a short handshake deadline."""
    hub = McpPeer({NODE: KEY}, handshake_timeout=0.3)
    await hub.start()
    yield hub
    await hub.stop()


@pytest.fixture
async def small_peer() -> AsyncIterator[McpPeer]:
    """A hub with eight connections and four handshakes, one of them for known nodes."""
    hub = McpPeer({NODE: KEY}, max_connections=8, max_handshakes=4, reserved_handshakes=1)
    await hub.start()
    yield hub
    await hub.stop()


async def test_a_peer_that_says_nothing_is_closed_at_the_handshake_deadline(
    strict_peer: McpPeer,
) -> None:
    reader, writer = await raw(strict_peer)
    messages = await read_messages(reader)
    assert messages[-1].code == CloseCode.HANDSHAKE_TIMEOUT
    writer.close()


async def test_half_a_frame_and_then_nothing_is_closed_at_the_deadline(
    strict_peer: McpPeer,
) -> None:
    reader, writer = await raw(strict_peer)
    writer.write(Hello(NODE, (1,), b"c" * 16).encode()[:7])
    messages = await read_messages(reader)
    assert messages[-1].code == CloseCode.HANDSHAKE_TIMEOUT
    writer.close()


async def test_a_slowloris_hello_is_cut_at_the_hello_deadline_not_the_handshakes() -> None:
    # One byte every 50 ms: alive, never finished. The 30 s handshake deadline would keep
    # it for 30 s; the 0.3 s HELLO deadline cuts it (read_messages gives up after 5 s).
    async with McpPeer({NODE: KEY}, handshake_timeout=30.0, hello_timeout=0.3) as hub:
        reader, writer = await raw(hub)
        hello = Hello(NODE, (1,), b"c" * 16).encode()

        async def trickle() -> None:
            for byte in hello[:-1]:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)  # the attacker's pace, not a wait for the hub

        task = asyncio.ensure_future(trickle())
        messages = await read_messages(reader)
        task.cancel()
        assert messages[-1].code == CloseCode.HANDSHAKE_TIMEOUT
        writer.close()


async def test_garbage_is_closed_at_once(peer: McpPeer) -> None:
    reader, writer = await raw(peer)
    writer.write(b"GET / HTTP/1.1\r\nHost: hub\r\n\r\n")
    messages = await read_messages(reader)
    # A protocol error, not the handshake deadline: the hub did not wait.
    assert messages[-1].code == CloseCode.PROTOCOL_ERROR
    writer.close()


async def test_an_oversized_frame_header_is_closed_before_its_payload_arrives(
    peer: McpPeer,
) -> None:
    reader, writer = await raw(peer)
    writer.write(bytes([0x5A, 1, 0xFF, 0xF0, 0x01]))
    messages = await read_messages(reader)
    assert messages[-1].code == CloseCode.PROTOCOL_ERROR
    assert "exceeds" in messages[-1].reason
    writer.close()


async def test_an_oversized_frame_in_a_session_ends_the_session(peer: McpPeer) -> None:
    async with LinkClient(peer.url, NODE, KEY, max_frame=65535, reconnect=False) as link:
        ack = await link.submit(b"x" * 20_000)
        with pytest.raises(LinkClosed, match="exceeds the maximum frame length"):
            await ack
        await eventually(lambda: NODE not in peer.sessions)
    assert peer.bodies() == []


async def test_connections_over_the_limit_are_refused_busy() -> None:
    # max_connections=4: the fifth connection is turned away at once.
    async with McpPeer({NODE: KEY}, max_connections=4) as hub:
        idle = [await raw(hub) for _ in range(4)]
        await eventually(lambda: hub.connections == 4)
        reader, writer = await raw(hub)
        messages = await read_messages(reader)
        assert len(messages) == 1 and messages[0].code == RejectCode.BUSY
        for _, w in [*idle, (reader, writer)]:
            w.close()


async def test_the_oldest_stranger_makes_room_for_a_newer_one(small_peer: McpPeer) -> None:
    # Four handshakes, one reserved: three strangers; the fourth turns the first away, so
    # sockets that say nothing cannot hold the slots against newcomers.
    first_reader, first_writer = await raw(small_peer)
    others = [await raw(small_peer) for _ in range(3)]
    messages = await read_messages(first_reader)
    assert len(messages) == 1 and messages[0].code == RejectCode.BUSY
    assert small_peer.handshaking == 3
    for _, writer in [(first_reader, first_writer), *others]:
        writer.close()


async def test_a_hello_flood_does_not_keep_a_real_node_out(small_peer: McpPeer) -> None:
    flood = []
    for _ in range(30):
        reader, writer = await raw(small_peer)
        writer.write(Hello("attacker", (1,), b"c" * 16).encode() * 3)
        flood.append((reader, writer))
    await eventually(lambda: small_peer.connections == 0)
    for _, writer in flood:
        writer.close()
    assert small_peer.stats.refused_busy + small_peer.stats.handshakes_failed >= 30
    async with LinkClient(small_peer.url, NODE, KEY) as link:
        await link.send(b"still in")
    assert small_peer.bodies() == [b"still in"]


async def test_a_replayed_handshake_is_rejected(peer: McpPeer) -> None:
    from mcptool.link.auth import auth_mac

    reader, writer = await raw(peer)
    hello = Hello(NODE, (1,), b"c" * 16)
    writer.write(hello.encode())
    challenge = parse_message(FrameDecoder().feed(await reader.readexactly(5 + 17))[0])
    mac = auth_mac(
        KEY,
        client_nonce=hello.nonce,
        server_nonce=challenge.nonce,
        version=1,
        offered=(1,),
        node_id=NODE,
    )
    writer.write(Auth(mac).encode())
    await reader.readexactly(5 + 1)  # the start of ACCEPT: the original session is in
    writer.close()
    # An eavesdropper replays the recorded HELLO and AUTH on a new connection.
    reader, writer = await raw(peer)
    writer.write(hello.encode() + Auth(mac).encode())
    messages = await read_messages(reader)
    assert messages[-1].code == RejectCode.AUTHENTICATION_FAILED
    writer.close()


async def test_a_second_session_of_the_same_node_replaces_the_first(peer: McpPeer) -> None:
    async with LinkClient(peer.url, NODE, KEY, reconnect=False) as first:
        await first.send(b"from first")
        async with LinkClient(peer.url, NODE, KEY, reconnect=False) as second:
            await eventually(lambda: first.state.value == "closed")
            assert "replaced" in first.last_reason
            await second.send(b"from second")
    assert peer.bodies() == [b"from first", b"from second"]


async def test_data_before_authentication_is_never_delivered(peer: McpPeer) -> None:
    reader, writer = await raw(peer)
    writer.write(Data(1, b"sneaky").encode())
    await read_messages(reader)
    writer.close()
    assert peer.bodies() == []


async def test_stop_tells_every_node_the_hub_is_going_away(peer: McpPeer) -> None:
    async with LinkClient(peer.url, NODE, KEY, reconnect=False) as link:
        await peer.stop()
        await eventually(lambda: link.state.value == "closed")
        assert "hub shutting down" in link.last_reason


async def test_a_node_that_stops_reading_is_stopped_being_read_from(peer: McpPeer) -> None:
    # It asks for big answers and never reads them: the hub's write buffer fills, and
    # the hub stops reading its requests instead of buffering answers without end.
    from mcptool.frame import Request, RequestEnvelope
    from mcptool.link.auth import auth_mac

    reader, writer = await raw(peer)
    hello = Hello(NODE, (1,), b"c" * 16)
    writer.write(hello.encode())
    challenge = parse_message(FrameDecoder().feed(await reader.readexactly(5 + 17))[0])
    mac = auth_mac(
        KEY,
        client_nonce=hello.nonce,
        server_nonce=challenge.nonce,
        version=1,
        offered=(1,),
        node_id=NODE,
    )
    writer.write(Auth(mac).encode())
    await eventually(lambda: NODE in peer.sessions)
    big = "x" * 8000
    request = Request(RequestEnvelope("echo", big)).encode()
    session = peer.sessions[NODE]
    assert session.transport is not None
    for _ in range(3000):
        writer.write(request)
        if not session.transport.is_reading():
            break
        await asyncio.sleep(0)  # let the hub run; the writer never drains on purpose
    assert session.conn is not None
    await eventually(
        lambda: (
            not session.transport.is_reading()  # type: ignore[union-attr]
            and session.conn.state.value == "established"
        )  # paused, not closed
    )
    writer.transport.abort()


async def authenticate(
    address: tuple[str, int],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, FrameDecoder, int]:
    """A node's handshake by hand: the open connection, its decoder and the resume point."""
    from mcptool.link.auth import auth_mac

    reader, writer = await asyncio.open_connection(*address)
    hello = Hello(NODE, (1,), b"c" * 16)
    writer.write(hello.encode())
    decoder = FrameDecoder()
    challenge = (await next_messages(reader, decoder, 1))[0]
    mac = auth_mac(
        KEY,
        client_nonce=hello.nonce,
        server_nonce=challenge.nonce,
        version=1,
        offered=(1,),
        node_id=NODE,
    )
    writer.write(Auth(mac).encode())
    _accept, resume = await next_messages(reader, decoder, 2)
    return reader, writer, decoder, resume.seq


async def next_messages(reader: asyncio.StreamReader, decoder: FrameDecoder, count: int) -> list:
    frames: list = []
    while len(frames) < count:
        data = await asyncio.wait_for(reader.read(4096), 5.0)
        assert data, f"the hub closed the connection after {frames}"
        frames.extend(decoder.feed(data))
    return [parse_message(f) for f in frames]


async def until_closed_or(reader: asyncio.StreamReader, decoder: FrameDecoder, count: int) -> list:
    """The next ``count`` messages, or fewer if the hub closes the connection first."""
    frames: list = []
    while len(frames) < count:
        data = await asyncio.wait_for(reader.read(4096), 5.0)
        if not data:
            break
        frames.extend(decoder.feed(data))
    return [parse_message(f) for f in frames]


async def test_a_hostile_event_behind_data_neither_loses_nor_doubles_them(tmp_path: Path) -> None:
    # Issue 12: DATA 1-3 and an EVENT of 5,000 nested arrays in one write. The EVENT is
    # answered with an ERROR naming it; DATA 1-3 are journaled once and acknowledged, so
    # the next session resumes after 3 and a node that resends from there doubles nothing.
    journal = tmp_path / "journal.jsonl"
    with JournalLedger(journal) as ledger:
        server = LinkServer(
            keys={NODE: KEY},
            ledger=ledger,
            on_data=ledger.record,
            before_ack=ledger.flush,
        )
        async with server:
            reader, writer, decoder, resume = await authenticate(server.address)
            assert resume == 0
            hostile = Frame(MessageType.EVENT, b"[" * 5000)
            writer.write(
                b"".join(Data(seq, f"reading {seq}".encode()).encode() for seq in (1, 2, 3))
                + encode_frame(hostile)
            )
            answer = await until_closed_or(reader, decoder, 2)
            writer.transport.abort()
            # Reconnect: resume where the hub stands, resend what is above it, go on.
            reader, writer, decoder, resume = await authenticate(server.address)
            writer.write(
                b"".join(
                    Data(seq, f"reading {seq}".encode()).encode() for seq in range(resume + 1, 5)
                )
            )
            assert (await next_messages(reader, decoder, 1))[-1] == Ack(4)
            writer.close()
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [(line["seq"], line["data"]) for line in lines] == [
        (seq, f"reading {seq}") for seq in (1, 2, 3, 4)
    ]
    assert resume == 3 and Ack(3) in answer
    (error,) = (m for m in answer if isinstance(m, ErrorMessage))
    assert error.code == ErrorCode.BAD_PAYLOAD and "nested deeper" in error.message


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[" * 5000, "nested deeper than 64"),
        (b'{"header":{"traceId":"t-9","n":' + b"9" * 5000 + b"}}", "5000 characters"),
        (b'{"header":{"traceId":"t-9"},"x":"\xff"}', "not UTF-8"),
    ],
)
async def test_a_hostile_request_is_answered_400_and_the_session_goes_on(
    peer: McpPeer, payload: bytes, reason: str
) -> None:
    reader, writer, decoder, _ = await authenticate(peer.address)
    writer.write(encode_frame(Frame(MessageType.REQUEST, payload)) + Data(1, b"after").encode())
    messages = await next_messages(reader, decoder, 2)
    response = next(m for m in messages if isinstance(m, Response)).envelope
    assert response.code == BAD_REQUEST and reason in response.message
    assert Ack(1) in messages
    writer.close()
    assert peer.bodies() == [b"after"]


async def test_a_bug_in_the_core_drops_the_connection_without_losing_what_it_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Should parsing a frame ever raise, the DATA before it were counted by the ledger:
    # the hub delivers them, drops the connection unacknowledged, and resumes after them.
    from mcptool.frame import Event

    def broken(payload: bytes) -> None:
        raise RuntimeError("a bug")

    journal = tmp_path / "journal.jsonl"
    with JournalLedger(journal) as ledger:
        server = LinkServer(
            keys={NODE: KEY}, ledger=ledger, on_data=ledger.record, before_ack=ledger.flush
        )
        async with server:
            reader, writer, decoder, _ = await authenticate(server.address)
            monkeypatch.setattr(Event, "parse", broken)
            writer.write(Data(1, b"one").encode() + Data(2, b"two").encode() + Event({}).encode())
            assert await until_closed_or(reader, decoder, 1) == []  # cut, nothing acknowledged
            writer.close()
            monkeypatch.undo()
            reader, writer, decoder, resume = await authenticate(server.address)
            writer.close()
    assert resume == 2
    assert [json.loads(line)["seq"] for line in journal.read_text().splitlines()] == [1, 2]
    assert "RuntimeError: a bug" in caplog.text
