"""Probe and scan against the simulated devices: every outcome class, every fault kind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mcptool.modbus.connection import ModbusConnection, Outcome
from mcptool.modbus.mbap import MalformedField
from mcptool.modbus.probe import probe
from mcptool.modbus.scan import Scanner, ScanOptions
from mcptool.modbus.targets import Target
from simulators.modbus import FAULT_KINDS, Fault, ModbusSimulator, load_profile

#: Fault kinds with a test below; a kind the simulator gains must get one too.
TESTED_KINDS = {
    "latency",
    "exception",
    "silence",
    "reset",
    "close_after",
    "garbage",
    "fragment",
    "wrong_tid",
    "corrupt",
    "refuse",
}


@pytest.fixture
async def boiler() -> AsyncIterator[ModbusSimulator]:
    async with ModbusSimulator([load_profile("boiler")]) as sim:
        yield sim


async def test_a_healthy_device_is_ok(boiler: ModbusSimulator) -> None:
    host, port = boiler.address
    result = await probe(host, port, count=4)
    assert result.outcome is Outcome.OK
    assert result.values is not None and len(result.values) == 4


async def test_latency_within_the_deadline_is_ok_and_counted_in_response_time(
    boiler: ModbusSimulator,
) -> None:
    boiler.add_fault(Fault(kind="latency", seconds=0.05))
    result = await probe(*boiler.address, timeout=2)
    assert result.outcome is Outcome.OK
    assert result.response_ms is not None and result.response_ms >= 50


async def test_latency_past_the_deadline_is_a_timeout(boiler: ModbusSimulator) -> None:
    boiler.add_fault(Fault(kind="latency", seconds=0.5))
    result = await probe(*boiler.address, timeout=0.1)
    assert result.outcome is Outcome.TIMEOUT


async def test_an_injected_exception_is_reported_by_code_and_name(
    boiler: ModbusSimulator,
) -> None:
    boiler.add_fault(Fault(kind="exception", code=0x06))
    result = await probe(*boiler.address)
    assert result.outcome is Outcome.EXCEPTION
    assert result.exception_name == "server device busy"
    assert result.answered


async def test_a_gateway_answers_0x0b_for_an_absent_unit() -> None:
    async with ModbusSimulator([load_profile("gateway")]) as sim:
        absent = await probe(*sim.address, unit=5)
        present = await probe(*sim.address, unit=2)
    assert absent.outcome is Outcome.EXCEPTION and absent.exception_code == 0x0B
    assert absent.device_absent and not absent.answered
    assert present.outcome is Outcome.OK


async def test_silence_is_a_timeout(boiler: ModbusSimulator) -> None:
    boiler.add_fault(Fault(kind="silence"))
    result = await probe(*boiler.address, timeout=0.1)
    assert result.outcome is Outcome.TIMEOUT
    assert result.connect_ms is not None


async def test_a_reset_is_reset(boiler: ModbusSimulator) -> None:
    boiler.add_fault(Fault(kind="reset"))
    result = await probe(*boiler.address)
    assert result.outcome is Outcome.RESET


async def test_a_close_without_reply_is_closed(boiler: ModbusSimulator) -> None:
    boiler.add_fault(Fault(kind="silence"))
    boiler.add_fault(Fault(kind="close_after", after=1))
    result = await probe(*boiler.address)
    assert result.outcome is Outcome.CLOSED


async def test_a_close_after_each_reply_costs_a_sweep_a_reconnect_not_an_answer(
    boiler: ModbusSimulator,
) -> None:
    boiler.add_fault(Fault(kind="close_after", after=1))
    scanner = Scanner([Target(*boiler.address)], ScanOptions(units=[1, 1, 1]))
    results = [r async for r in scanner.results()]
    assert [r.outcome for r in results] == [Outcome.OK] * 3
    assert scanner.summary.connections == 3


async def test_garbage_is_malformed_by_protocol_id(boiler: ModbusSimulator) -> None:
    boiler.add_fault(Fault(kind="garbage"))
    result = await probe(*boiler.address)
    assert result.outcome is Outcome.MALFORMED
    assert result.malformed is MalformedField.PROTOCOL_ID


async def test_a_fragmented_reply_is_reassembled(boiler: ModbusSimulator) -> None:
    boiler.add_fault(Fault(kind="fragment", pieces=4, pause=0.02))
    result = await probe(*boiler.address, count=10)
    assert result.outcome is Outcome.OK
    assert result.values is not None and len(result.values) == 10


async def test_a_wrong_transaction_id_is_malformed(boiler: ModbusSimulator) -> None:
    boiler.add_fault(Fault(kind="wrong_tid"))
    result = await probe(*boiler.address)
    assert result.outcome is Outcome.MALFORMED
    assert result.malformed is MalformedField.TRANSACTION_ID


@pytest.mark.parametrize(
    "field",
    # the transaction id is the wrong_tid kind's job
    [f for f in MalformedField if f is not MalformedField.TRANSACTION_ID],
)
async def test_each_corrupted_field_is_named(
    boiler: ModbusSimulator, field: MalformedField
) -> None:
    boiler.add_fault(Fault(kind="corrupt", field=field.value))
    result = await probe(*boiler.address, count=2, timeout=0.3)
    assert result.outcome is Outcome.MALFORMED
    assert result.malformed is field


async def test_refusing_with_a_close_is_closed(boiler: ModbusSimulator) -> None:
    boiler.add_fault(Fault(kind="refuse", limit=0, mode="close"))
    result = await probe(*boiler.address)
    assert result.outcome in (Outcome.CLOSED, Outcome.RESET)


async def test_refusing_with_a_reset_is_reset(boiler: ModbusSimulator) -> None:
    boiler.add_fault(Fault(kind="refuse", limit=0, mode="reset"))
    result = await probe(*boiler.address)
    assert result.outcome is Outcome.RESET


async def test_a_full_backlog_makes_the_device_unreachable(boiler: ModbusSimulator) -> None:
    boiler.add_fault(Fault(kind="refuse", limit=0, mode="backlog"))
    # The one accept already in flight, then the one the queue holds: the rest wait.
    fillers = [await ModbusConnection.open(*boiler.address, connect_timeout=0.3) for _ in "ab"]
    try:
        result = await probe(*boiler.address, connect_timeout=0.3)
    finally:
        for filler in fillers:
            if isinstance(filler, ModbusConnection):
                filler.close()
    assert result.outcome is Outcome.UNREACHABLE


async def test_a_stopped_simulator_is_refused() -> None:
    sim = ModbusSimulator([load_profile("boiler")])
    await sim.start()
    address = sim.address
    await sim.stop()
    result = await probe(*address)
    assert result.outcome is Outcome.REFUSED


async def test_identification_reads_every_object_and_the_server_id(
    boiler: ModbusSimulator,
) -> None:
    scanner = Scanner([Target(*boiler.address)], ScanOptions(identify=True))
    (result,) = [r async for r in scanner.results()]
    assert result.identity is not None
    assert result.identity.named() == {
        "vendor_name": "Acme Heating",
        "product_code": "BX-200",
        "revision": "2.4",
        "vendor_url": "https://example.invalid/acme",
        "product_name": "BX-200 boiler controller",
        "model_name": "BX-200-G",
        "user_application_name": "boiler room 1",
    }
    assert (result.identity.server_id, result.identity.run_indicator) == ("0x42 BX-200", True)
    assert result.identity.errors == ()


async def test_a_gateway_sweep_finds_exactly_its_devices() -> None:
    async with ModbusSimulator([load_profile("gateway")]) as sim:
        scanner = Scanner([Target(*sim.address)], ScanOptions(units=range(1, 248)))
        results = [r async for r in scanner.results()]
        accepted = sim.counters.connections
    assert sorted(r.unit for r in results if r.answered) == [1, 2, 10]
    assert sum(r.device_absent for r in results) == 244
    assert accepted == 1


async def test_a_late_reply_is_skipped_and_the_sweep_goes_on(boiler: ModbusSimulator) -> None:
    boiler.add_fault(Fault(kind="latency", seconds=0.25, times=1))
    scanner = Scanner([Target(*boiler.address)], ScanOptions(units=[1, 1], timeout=0.2))
    results = [r async for r in scanner.results()]
    assert [r.outcome for r in results] == [Outcome.TIMEOUT, Outcome.OK]
    assert scanner.summary.connections == 1


def test_every_fault_kind_of_the_simulator_has_a_test_here() -> None:
    assert set(FAULT_KINDS) == TESTED_KINDS
