"""LinkClient over real loopback sockets against the MCP peer (a LinkServer)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest

from mcptool.frame import RequestEnvelope
from mcptool.link import (
    AuthenticationFailed,
    ClientState,
    LinkClient,
    LinkClosed,
    LinkError,
    RequestTimeout,
    parse_url,
)
from simulators.mcp import McpPeer
from tests.link.conftest import KEY, NODE, eventually, fast_backoff


async def test_send_returns_once_the_hub_acknowledged_and_delivered(peer: McpPeer) -> None:
    async with LinkClient(peer.url, NODE, KEY) as link:
        await link.send(b"first")
        assert peer.bodies() == [b"first"]


async def test_pipelined_frames_arrive_once_each_in_order(peer: McpPeer) -> None:
    bodies = [b"%05d" % n for n in range(3000)]
    async with LinkClient(peer.url, NODE, KEY, outbox_capacity=500) as link:
        futures = [await link.submit(body) for body in bodies]
        await asyncio.gather(*futures)
        assert link.pending == 0
    assert peer.bodies() == bodies


async def test_requests_are_correlated_by_trace_id_when_answered_out_of_order(
    peer: McpPeer,
) -> None:
    async def slow(data: Any, request: RequestEnvelope) -> Any:
        await asyncio.sleep(data)  # a handler that takes its time, on purpose
        return data

    peer.router.add("slow", slow)
    async with LinkClient(peer.url, NODE, KEY) as link:
        answers = await asyncio.gather(*(link.request("slow", d) for d in (0.2, 0.0, 0.1)))
    assert [a.data for a in answers] == [0.2, 0.0, 0.1]


async def test_an_unknown_action_is_answered_404_not_raised(peer: McpPeer) -> None:
    async with LinkClient(peer.url, NODE, KEY) as link:
        response = await link.request("no-such-action")
    assert response.code == 404


async def test_a_request_without_an_answer_times_out(peer: McpPeer) -> None:
    async def never(data: Any, request: RequestEnvelope) -> None:
        await asyncio.Event().wait()

    peer.router.add("never", never)
    async with LinkClient(peer.url, NODE, KEY) as link:
        with pytest.raises(RequestTimeout):
            await link.request("never", timeout=0.2)


async def test_ping_measures_a_round_trip(peer: McpPeer) -> None:
    async with LinkClient(peer.url, NODE, KEY) as link:
        assert await link.ping() > 0


async def test_a_wrong_key_fails_start_with_authentication_failed(peer: McpPeer) -> None:
    link = LinkClient(peer.url, NODE, b"not the key at all, not at all")
    with pytest.raises(AuthenticationFailed, match="authentication failed"):
        await link.start(5)
    assert link.state is ClientState.CLOSED


async def test_an_unreachable_hub_without_reconnect_fails_with_the_reason(peer: McpPeer) -> None:
    host, port = peer.address
    await peer.stop()
    link = LinkClient(f"mcp://{host}:{port}", NODE, KEY, reconnect=False)
    with pytest.raises(LinkClosed, match="connection refused"):
        await link.start(5)


async def test_start_gives_up_after_its_timeout_while_retrying(peer: McpPeer) -> None:
    host, port = peer.address
    await peer.stop()
    link = LinkClient(f"mcp://{host}:{port}", NODE, KEY, backoff=fast_backoff())
    with pytest.raises(LinkError, match="could not establish a link"):
        await link.start(0.3)


async def test_state_changes_are_reported_in_order(peer: McpPeer) -> None:
    seen: list[ClientState] = []
    async with LinkClient(peer.url, NODE, KEY, on_state_change=lambda e: seen.append(e.new)):
        pass
    assert seen == [
        ClientState.CONNECTING,
        ClientState.HANDSHAKING,
        ClientState.AUTHENTICATING,
        ClientState.ESTABLISHED,
        ClientState.CLOSING,
        ClientState.CLOSED,
    ]


async def test_after_close_sending_raises_link_closed(peer: McpPeer) -> None:
    link = LinkClient(peer.url, NODE, KEY)
    await link.start()
    await link.close()
    with pytest.raises(LinkClosed):
        await link.send(b"late")


async def test_events_flow_both_ways(peer: McpPeer) -> None:
    got: list[dict[str, Any]] = []
    async with LinkClient(peer.url, NODE, KEY, on_event=got.append) as link:
        link.send_event({"alarm": "high"})
        await eventually(lambda: peer.events)
        peer.sessions[NODE].conn.send_event({"hello": "node"})  # type: ignore[union-attr]
        peer.sessions[NODE]._process()
        await eventually(lambda: got)
    assert peer.events == [(NODE, {"alarm": "high"})]
    assert got == [{"hello": "node"}]


async def test_a_hub_shutdown_sends_the_client_back_to_reconnecting(peer: McpPeer) -> None:
    async with LinkClient(peer.url, NODE, KEY, backoff=fast_backoff()) as link:
        await peer.stop()
        await eventually(lambda: link.state is not ClientState.ESTABLISHED)
        assert "hub shutting down" in link.last_reason or link.state is ClientState.BACKOFF


async def test_tls_links_work_with_a_trusted_self_signed_certificate(
    self_signed: tuple[Path, Path],
) -> None:
    cert, key = self_signed
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    async with McpPeer({NODE: KEY}, ssl=server_context) as hub:
        assert hub.url.startswith("mcps://")
        client_context = ssl.create_default_context(cafile=str(cert))
        async with LinkClient(hub.url, NODE, KEY, ssl=client_context) as link:
            await link.send(b"over tls")
            assert (await link.request("echo", "hi")).data == "hi"
        assert hub.bodies() == [b"over tls"]


async def test_tls_with_an_untrusted_certificate_fails_with_a_clear_reason(
    self_signed: tuple[Path, Path],
) -> None:
    cert, key = self_signed
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    async with McpPeer({NODE: KEY}, ssl=server_context) as hub:
        link = LinkClient(hub.url, NODE, KEY, reconnect=False)
        with pytest.raises(LinkClosed, match="certificate"):
            await link.start(5)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mcp://127.0.0.1:7000", ("127.0.0.1", 7000, False)),
        ("mcps://localhost", ("localhost", 7879, True)),
        ("mcp://[::1]", ("::1", 7878, False)),
    ],
)
def test_urls_name_host_port_and_tls(url: str, expected: tuple[str, int, bool]) -> None:
    parsed = parse_url(url)
    assert (parsed.host, parsed.port, parsed.tls) == expected


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1", "mcp://:7000", "mcp://127.0.0.1:99999", "mcp://h/path"]
)
def test_bad_urls_are_refused_with_the_fix(url: str) -> None:
    with pytest.raises(LinkError, match="mcp"):
        parse_url(url)


async def test_send_nowait_and_on_acked_let_a_spool_track_delivery(peer: McpPeer) -> None:
    acked: list[int] = []
    async with LinkClient(peer.url, NODE, KEY, on_acked=acked.append) as link:
        ids = [link.send_nowait(b"%d" % n) for n in range(10)]
        await link.drain()
    assert ids == list(range(1, 11))
    assert acked[-1] == 10
    assert peer.bodies() == [b"%d" % n for n in range(10)]


async def test_a_failing_application_callback_means_a_retry_not_a_loss(peer: McpPeer) -> None:
    failures = []
    record = peer.on_data

    def flaky(node: str, seq: int, body: bytes) -> None:
        if body == b"3" and not failures:
            failures.append(seq)
            raise OSError("disk full")  # the hub's storage failed once
        record(node, seq, body)  # type: ignore[misc]

    peer.on_data = flaky
    bodies = [b"%d" % n for n in range(6)]
    async with LinkClient(peer.url, NODE, KEY, backoff=fast_backoff()) as link:
        await asyncio.gather(*[await link.submit(body) for body in bodies])
    assert failures == [4]
    assert peer.bodies() == bodies


async def test_a_link_started_without_waiting_queues_until_the_hub_appears(
    peer: McpPeer,
) -> None:
    host, port = peer.address
    await peer.stop()
    link = LinkClient(f"mcp://{host}:{port}", NODE, KEY, backoff=fast_backoff())
    await link.start(wait=False)
    ack = await link.submit(b"queued while the hub was down")
    async with McpPeer({NODE: KEY}, host, port) as hub:
        await asyncio.wait_for(ack, 10)
        assert hub.bodies() == [b"queued while the hub was down"]
    await link.close()


async def test_a_response_too_big_for_a_frame_is_answered_500(peer: McpPeer) -> None:
    peer.router.add("huge", lambda data, request: "x" * 20_000)
    async with LinkClient(peer.url, NODE, KEY) as link:
        response = await link.request("huge")
        assert response.code == 500
        assert "exceeds the frame limit" in response.message
        with pytest.raises(ValueError, match="exceeds the frame limit"):
            await link.request("echo", "y" * 20_000)
