"""Moves records from the spool to one destination, advancing its position on acks only.

A destination is a ``Transport``: ``connect``, ``send`` (returns once the destination
acknowledged the record: a PUBACK, a hub ACK, a write) and ``close``, plus ``watch``,
which returns or raises when the connection is lost. The ``Forwarder`` keeps up to
``window`` records in flight, acknowledges to the spool only the contiguous prefix of
acknowledged records (so a restart resends whatever might not have arrived), and on any
failure drops the connection, backs off and starts again from the spool position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from enum import StrEnum
from typing import Protocol

from mcptool.backoff import Backoff
from mcptool.errors import McptoolError
from mcptool.gateway.spool import Record, Spool

__all__ = ["Forwarder", "SinkError", "SinkState", "Transport"]

log = logging.getLogger(__name__)


class SinkError(McptoolError):
    """A destination failed (unreachable, refused, lost); the forwarder retries."""


class SinkState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    STOPPED = "stopped"


class Transport(Protocol):
    name: str
    # what to check when it cannot connect, for the one warning an outage gets
    hint: str

    async def connect(self) -> None: ...

    async def send(self, record: Record) -> None: ...

    async def watch(self) -> None: ...

    async def close(self) -> None: ...


class Forwarder:
    """Runs one transport against the spool until cancelled."""

    def __init__(
        self,
        spool: Spool,
        transport: Transport,
        *,
        window: int = 100,
        backoff_initial: float = 0.5,
        backoff_max: float = 15.0,
    ) -> None:
        self.spool = spool
        self.transport = transport
        self.name = transport.name
        self.window = window
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.state = SinkState.CONNECTING
        self.last_error = ""
        self.sent = 0  # records handed to the transport, resends included
        self.acked = 0  # records acknowledged
        self.connects = 0
        self.since = time.time()

    async def run(self) -> None:
        failures = 0
        backoff = Backoff(
            initial=self.backoff_initial, multiplier=1.6, jitter=0.2, maximum=self.backoff_max
        )
        try:
            while True:
                self._set(SinkState.CONNECTING)
                try:
                    await self.transport.connect()
                    self.connects += 1
                    self._set(SinkState.CONNECTED)
                    if failures:
                        log.warning(
                            "%s: delivering again after %d failed attempts", self.name, failures
                        )
                    failures = 0
                    backoff.reset()
                    await self._pump()
                except (SinkError, OSError) as exc:
                    self.last_error = str(exc) or type(exc).__name__
                    # one warning an outage, with what to check; the retries are quiet
                    if failures == 0:
                        hint = getattr(self.transport, "hint", "")
                        log.warning(
                            "%s: %s; readings wait in the spool, retrying%s",
                            self.name,
                            self.last_error,
                            f" ({hint})" if hint else "",
                        )
                    else:
                        log.debug("%s: %s", self.name, self.last_error)
                except Exception as exc:  # a bug in a transport must not stop delivery
                    self.last_error = f"internal error: {type(exc).__name__}: {exc}"
                    log.exception("%s: unexpected error, reconnecting", self.name)
                finally:
                    with contextlib.suppress(Exception):
                        await self.transport.close()
                failures += 1
                self._set(SinkState.BACKOFF)
                await asyncio.sleep(backoff.next_delay())
        finally:
            self._set(SinkState.STOPPED)

    def _set(self, state: SinkState) -> None:
        if state != self.state:
            self.state = state
            self.since = time.time()

    async def _pump(self) -> None:
        spool, transport = self.spool, self.transport
        after = spool.position(self.name)
        order: deque[int] = deque()  # ids in flight, in send order
        done: set[int] = set()
        sending: dict[asyncio.Future[None], int] = {}
        watch = asyncio.ensure_future(transport.watch())
        more: asyncio.Future[None] | None = None
        try:
            while True:
                room = self.window - len(order)
                records = await spool.fetch(after, room) if room > 0 else []
                for record in records:
                    task = asyncio.ensure_future(transport.send(record))
                    sending[task] = record.id
                    order.append(record.id)
                    after = record.id
                self.sent += len(records)
                waits: set[asyncio.Future[None]] = {watch, *sending}
                if len(order) < self.window:
                    if more is None or more.done():
                        more = asyncio.ensure_future(spool.wait_beyond(after))
                    waits.add(more)
                finished, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if watch in finished:
                    watch.result()  # raises the reason
                    raise SinkError(f"{self.name}: connection closed")
                acked = 0
                for task in finished:
                    record_id = sending.pop(task, None)
                    if record_id is None:
                        continue
                    task.result()  # a failed send fails the connection
                    done.add(record_id)
                    acked += 1
                self.acked += acked
                if acked:
                    position = None
                    while order and order[0] in done:
                        position = order.popleft()
                        done.discard(position)
                    if position is not None:
                        spool.ack(self.name, position)
        finally:
            for future in (watch, more, *sending):
                if future is not None:
                    future.cancel()
            await asyncio.gather(
                *(f for f in (watch, more, *sending) if f is not None), return_exceptions=True
            )
