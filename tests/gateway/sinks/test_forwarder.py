"""The forwarder advances a destination's position only over acknowledged records, in
order, and after a failure starts again from that position (a stand-in transport)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mcptool.gateway.sinks.forwarder import Forwarder, SinkError, SinkState
from mcptool.gateway.spool import Record, Spool
from tests.gateway.conftest import until


class Manual:
    """A transport whose acknowledgements the test gives by hand."""

    name = "manual"

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.acks: dict[int, asyncio.Future[None]] = {}
        self.lost: asyncio.Future[None] | None = None
        self.connects = 0

    async def connect(self) -> None:
        self.connects += 1
        self.lost = asyncio.get_running_loop().create_future()

    async def send(self, record: Record) -> None:
        self.sent.append(record.id)
        self.acks[record.id] = asyncio.get_running_loop().create_future()
        await self.acks[record.id]

    async def watch(self) -> None:
        assert self.lost is not None
        await self.lost

    async def close(self) -> None:
        pass


async def test_position_moves_only_over_a_contiguous_run_of_acks(tmp_path: Path) -> None:
    transport = Manual()
    async with Spool(tmp_path / "s.db", sinks=["manual"]) as spool:
        for _ in range(4):
            spool.append("d", spool.reserve("d", 1), 1, 0.0, b"{}")
        forwarder = Forwarder(spool, transport, window=10)
        task = asyncio.create_task(forwarder.run())
        await until(lambda: len(transport.sent) == 4)
        transport.acks[2].set_result(None)
        transport.acks[3].set_result(None)
        await asyncio.sleep(0)
        assert spool.position("manual") == 0  # record 1 is still out
        transport.acks[1].set_result(None)
        await until(lambda: spool.position("manual") == 3)
        # the connection breaks with record 4 unacknowledged: it is sent again
        assert transport.lost is not None
        transport.lost.set_exception(SinkError("gone"))
        await until(
            lambda: transport.connects == 2 and transport.sent[-1] == 4 and len(transport.sent) == 5
        )
        assert forwarder.state is SinkState.CONNECTED
        transport.acks[4].set_result(None)
        await until(lambda: spool.position("manual") == 4)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_no_more_than_the_window_is_in_flight(tmp_path: Path) -> None:
    transport = Manual()
    async with Spool(tmp_path / "s.db", sinks=["manual"]) as spool:
        for _ in range(10):
            spool.append("d", spool.reserve("d", 1), 1, 0.0, b"{}")
        task = asyncio.create_task(Forwarder(spool, transport, window=3).run())
        await until(lambda: len(transport.sent) == 3)
        await asyncio.sleep(0.05)
        assert transport.sent == [1, 2, 3]
        transport.acks[1].set_result(None)
        await until(lambda: len(transport.sent) == 4)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
