"""MCP uplink destination: each record goes to the hub as DATA, delivered when ACKed.

A record whose message exceeds one frame (``max_frame``) is cut into several messages
(same format, fewer readings each) and counts as delivered when the hub acknowledged all
of them. What cannot be cut so is never sent: resending it would fail the same way on
every reconnect and wedge the uplink behind it. That is a reading that alone is over a
frame (only that reading: the rest of its poll is sent), or a whole record that is not a
poll. It is counted per device (``dropped``) and handed, as a ``Dropped`` with
``where="uplink"`` and ``kind="over_frame"``, to ``on_drop`` (logged when there is none),
once; the gateway sets ``on_drop`` to the spool's ``report_drop``, the one path every drop
takes to the logs, ``/metrics`` and the published status. Other destinations still get it.

The link's own reconnect is off: when the session drops, the forwarder reconnects with
a fresh ``LinkClient`` and resends from the spool position, the same way for every
destination, so the spool stays the only copy that matters. A fresh client numbers its
frames after the hub's resume point (docs/LINK.md), so resends are never mistaken for
duplicates by the hub; the readings' own sequence numbers identify them downstream.

With the gateway's ``tracing``, each record is sent under a ``gateway.link`` span (child of
the trace its message carries) until the hub's ACK, and each frame carries that span's
``traceparent`` instead, so that the hub's spans continue from the send.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mcptool.errors import McptoolError
from mcptool.frame import MAX_LENGTH_DEFAULT
from mcptool.gateway.config import UplinkConfig
from mcptool.gateway.sinks.forwarder import SinkError
from mcptool.gateway.sinks.split import Unsplittable, split
from mcptool.gateway.spool import Dropped, Record
from mcptool.link import ClientState, LinkClient, LinkError, load_secret
from mcptool.link.events import StateChanged

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from mcptool.gateway.tracing import GatewayTracing

__all__ = ["UplinkTransport"]

log = logging.getLogger(__name__)

# room for the DATA header fields around the body inside one frame
_HEADER_ROOM = 64
_BODY_LIMIT = MAX_LENGTH_DEFAULT - _HEADER_ROOM


def body_limit(max_frame: int) -> int:
    """Bytes of one record's message that fit a frame of ``max_frame`` bytes."""
    return max_frame - _HEADER_ROOM


OVER_FRAME = "over_frame"  # the kind of every uplink drop (``Dropped.kind``)


class UplinkTransport:
    def __init__(
        self,
        config: UplinkConfig,
        node: str,
        base_dir: Path = Path(),
        *,
        on_drop: Callable[[Dropped], None] | None = None,
        tracing: GatewayTracing | None = None,
    ) -> None:
        self.name = "uplink"
        self.hint = (
            f"is a hub listening at {' or '.join(config.url)}? check [uplink] url, node_id and"
            " the key file"
        )
        self.config = config
        self.node_id = config.node_id or node
        self.base_dir = base_dir
        self.on_drop = on_drop
        self.tracing = tracing
        self.dropped: dict[str, int] = {}  # readings per device never sent: over one frame
        self.body_limit = body_limit(config.max_frame)
        self._link: LinkClient | None = None
        self._lost: asyncio.Future[None] | None = None
        self._hub = 0  # index into config.url: the next hub tried after a failure

    def _key(self) -> bytes:
        if self.config.key is not None:
            return self.config.key.encode()
        assert self.config.key_file is not None
        try:
            return load_secret(self.base_dir / self.config.key_file, self.node_id)
        except McptoolError as exc:
            raise SinkError(f"uplink: {exc}") from None

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.url.startswith("mcps://"):
            return None
        ca = self.base_dir / self.config.ca_file if self.config.ca_file else None
        context = ssl.create_default_context(cafile=ca)
        if self.config.tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    @property
    def url(self) -> str:
        """The hub this connection goes to (the next one after each failure)."""
        return self.config.url[self._hub % len(self.config.url)]

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        link = LinkClient(
            self.url,
            self.node_id,
            self._key(),
            ssl=self._ssl(),
            reconnect=False,
            outbox_capacity=max(self.config.window * 4, 64),
            max_frame=self.config.max_frame,
            on_state_change=self._state_changed,
        )
        try:
            await link.start(timeout=self.config.connect_timeout)
        except LinkError as exc:
            url = self.url
            self._hub += 1  # fail over: hubs with a shared store resume where this one was
            raise SinkError(f"uplink {url}: {exc}") from None
        self._link = link

    def _state_changed(self, event: StateChanged) -> None:
        lost = self._lost
        if (
            event.old is ClientState.ESTABLISHED
            and event.new is not ClientState.ESTABLISHED
            and lost is not None
            and not lost.done()
        ):
            self._hub += 1
            lost.set_exception(SinkError(f"uplink session lost: {event.reason}"))

    async def send(self, record: Record) -> None:
        if self.tracing is None:
            await self._send(record, None)
            return
        with self.tracing.link(record, self.url) as span:
            await self._send(record, span)

    async def _send(self, record: Record, span: Span | None) -> None:
        """Send ``record`` (cut to frames if need be); with ``span``, each piece carries
        its ``traceparent`` (the hub's spans are its children)."""
        link = self._link
        if link is None:
            raise SinkError("uplink: not connected")
        limit = self.body_limit
        try:
            cut = split(record, limit)
        except Unsplittable as exc:
            # the forwarder moves past it: the uplink goes on with the next record
            why = f"a record of {exc.size} bytes is over one frame ({limit} bytes) and {exc.why}"
            self._drop(record.stream, record.seq_first, record.seq_last, why)
            return
        try:
            bodies = [piece.body for piece in cut.pieces]
            if span is not None and self.tracing is not None:
                bodies = [self.tracing.relabel(body, span) for body in bodies]
            acks = [await link.submit(body) for body in bodies]
            await asyncio.gather(*acks)
        except LinkError as exc:
            raise SinkError(f"uplink: {exc}") from None
        # reported once the rest is acknowledged: a resend after a lost session would
        # otherwise count them again
        for first, last, size in cut.oversized:
            why = f"a reading of {size} bytes is over one frame ({limit} bytes)"
            self._drop(record.stream, first, last, why)

    def _drop(self, device: str, first: int, last: int, why: str) -> None:
        dropped = Dropped(device, first, last, f"uplink: {why}", "uplink", OVER_FRAME)
        self.dropped[device] = self.dropped.get(device, 0) + dropped.count
        if self.on_drop is not None:
            self.on_drop(dropped)
        else:
            log.warning("%s", dropped)

    async def watch(self) -> None:
        assert self._lost is not None
        await self._lost

    async def close(self) -> None:
        link, self._link = self._link, None
        if self._lost is not None and not self._lost.done():
            self._lost.cancel()
        if link is not None:
            await link.close()
