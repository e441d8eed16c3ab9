"""Fixtures for simulator tests: a running simulator and a raw Modbus/TCP socket client.

The raw client speaks bytes so tests can see exactly what a fault did on the wire
(a wrong transaction id, a reset, a reply in pieces), which a Modbus library would hide.

Other areas reuse these by importing them into their own conftest::

    from tests.simulators.modbus.conftest import RawClient, modbus_simulator  # noqa: F401

``modbus_simulator`` is a factory: ``sim = await modbus_simulator("boiler", faults=[...])``
starts a simulator on an ephemeral loopback port and stops it after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

import pytest

import simulators.modbus.profiles
from simulators.modbus import DeviceProfile, Fault, ModbusSimulator, load_profile

# The bundled profiles, where the package keeps them (package data, not a test-only copy).
PROFILES = Path(simulators.modbus.profiles.__file__).parent


class FakeClock:
    """A clock tests move by hand, so generated values are exact and nothing sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RawClient:
    """A Modbus/TCP client on a bare asyncio stream: send requests, read raw frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> RawClient:
        reader, writer = await asyncio.open_connection(*address)
        return cls(reader, writer)

    def send(self, tid: int, unit: int, pdu: bytes) -> None:
        self.writer.write(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)

    async def frame(self, timeout: float = 2.0) -> tuple[int, int, bytes]:
        """Read one well-formed reply: (transaction id, unit, PDU)."""
        header = await asyncio.wait_for(self.reader.readexactly(7), timeout)
        tid, pid, length, unit = struct.unpack(">HHHB", header)
        assert pid == 0, f"protocol id {pid}"
        pdu = await asyncio.wait_for(self.reader.readexactly(length - 1), timeout)
        return tid, unit, pdu

    async def request(self, unit: int, pdu: bytes, tid: int = 1) -> bytes:
        self.send(tid, unit, pdu)
        got_tid, got_unit, reply = await self.frame()
        assert (got_tid, got_unit) == (tid, unit)
        return reply

    async def read_bytes(self, n: int, timeout: float = 2.0) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), timeout)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def read_holding(address: int, count: int) -> bytes:
    return struct.pack(">BHH", 3, address, count)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def boiler() -> DeviceProfile:
    return load_profile(PROFILES / "boiler.toml")


@pytest.fixture
async def sim(boiler: DeviceProfile, clock: FakeClock) -> AsyncIterator[ModbusSimulator]:
    async with ModbusSimulator([boiler], clock=clock) as running:
        yield running


@pytest.fixture
async def client(sim: ModbusSimulator) -> AsyncIterator[RawClient]:
    raw = await RawClient.connect(sim.address)
    yield raw
    await raw.close()


StartSimulator = Callable[..., Awaitable[ModbusSimulator]]


@pytest.fixture
async def modbus_simulator() -> AsyncIterator[StartSimulator]:
    """Start simulators from profiles (objects, paths or bundled names); all stop at teardown."""
    started: list[ModbusSimulator] = []

    async def start(
        *profiles: DeviceProfile | str | Path,
        faults: Iterable[Fault] = (),
        clock: Callable[[], float] | None = None,
    ) -> ModbusSimulator:
        loaded = [p if isinstance(p, DeviceProfile) else load_profile(p) for p in profiles]
        kwargs = {"clock": clock} if clock is not None else {}
        sim = ModbusSimulator(loaded or [load_profile("boiler")], faults=faults, **kwargs)
        started.append(await sim.start())
        return sim

    yield start
    for sim in started:
        await sim.stop()
