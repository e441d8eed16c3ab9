"""A scan sweeps units over one connection per target and keeps to its limits."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
from pyModbusTCP.server import DeviceIdentification

from mcptool.errors import UsageError
from mcptool.modbus.connection import Outcome
from mcptool.modbus.mbap import MalformedField
from mcptool.modbus.probe import ProbeResult
from mcptool.modbus.scan import RateLimiter, Scanner, ScanOptions
from mcptool.modbus.targets import Target
from simulators.modbus import Fault, ModbusSimulator, load_profile
from tests.modbus.peers import (
    Tally,
    banner_service,
    exception_reply,
    normal_reply,
    pymodbustcp_server,
    refusing_port,
    tallying_server,
)

HOST = "127.0.0.1"


async def run(targets: list[Target], **options: object) -> tuple[list[ProbeResult], Scanner]:
    scanner = Scanner(targets, ScanOptions(**options))  # type: ignore[arg-type]
    return [result async for result in scanner.results()], scanner


def only_units_1_and_3(request: bytes) -> bytes | None:
    unit = request[6]
    return normal_reply(request, (unit,)) if unit in (1, 3) else exception_reply(request, 0x0B)


async def test_a_unit_sweep_uses_one_connection_per_target() -> None:
    async with tallying_server(only_units_1_and_3) as (port, tally):
        results, scanner = await run([Target(HOST, port)], units=range(1, 6))
    assert tally.accepted == 1
    assert scanner.summary.connections == 1
    assert sorted((r.unit, r.outcome.value) for r in results) == [
        (1, "ok"),
        (2, "exception"),
        (3, "ok"),
        (4, "exception"),
        (5, "exception"),
    ]
    assert scanner.summary.devices == 2
    assert scanner.summary.hosts_answering == 1


async def test_silent_units_do_not_cost_the_connection() -> None:
    def silent_for_2(request: bytes) -> bytes | None:
        return None if request[6] == 2 else normal_reply(request)

    async with tallying_server(silent_for_2) as (port, tally):
        results, _ = await run([Target(HOST, port)], units=[1, 2, 3], timeout=0.2)
    assert [r.outcome for r in sorted(results, key=lambda r: r.unit or 0)] == [
        Outcome.OK,
        Outcome.TIMEOUT,
        Outcome.OK,
    ]
    assert tally.accepted == 1


async def test_a_refused_target_is_one_row_not_one_per_unit() -> None:
    with refusing_port() as port:
        results, scanner = await run([Target(HOST, port)], units=range(1, 248))
    (result,) = results
    assert result.outcome is Outcome.REFUSED
    assert result.unit is None
    assert "247 unit ids not probed" in result.reason
    assert scanner.summary.probes == 1


async def test_a_service_that_is_not_modbus_ends_its_sweep_at_once() -> None:
    with banner_service() as port:
        results, _ = await run([Target(HOST, port)], units=range(1, 248))
    (result,) = results
    assert result.malformed is MalformedField.PROTOCOL_ID


async def test_concurrency_bounds_the_connections_open_at_once() -> None:
    tally = Tally()
    async with AsyncExitStack() as stack:
        ports = [
            (await stack.enter_async_context(tallying_server(None, tally=tally)))[0]
            for _ in range(6)
        ]
        results, _ = await run(
            [Target(HOST, p) for p in ports], concurrency=2, per_host=6, timeout=0.1
        )
    assert {r.outcome for r in results} == {Outcome.TIMEOUT}
    assert tally.accepted == 6
    assert tally.max_open == 2


async def test_one_connection_at_a_time_per_host_unless_told() -> None:
    tally = Tally()
    async with AsyncExitStack() as stack:
        ports = [
            (await stack.enter_async_context(tallying_server(None, tally=tally)))[0]
            for _ in range(4)
        ]
        targets = [Target(HOST, port) for port in ports]
        await run(targets, concurrency=8, timeout=0.1)
        one_at_a_time = tally.max_open
        tally.max_open = 0
        await run(targets, concurrency=8, per_host=4, timeout=0.1)
    assert one_at_a_time == 1
    assert tally.max_open == 4


async def test_different_hosts_are_scanned_in_parallel() -> None:
    tally = Tally()
    async with AsyncExitStack() as stack:
        targets = []
        for i in range(2, 6):
            host = f"127.0.0.{i}"
            port, _ = await stack.enter_async_context(tallying_server(None, host, tally))
            targets.append(Target(host, port))
        results, _ = await run(targets, concurrency=8, timeout=0.2)
    assert len(results) == 4
    assert tally.max_open == 4


async def test_retries_happen_only_when_asked() -> None:
    calls = {"n": 0}

    def silent_once(request: bytes) -> bytes | None:
        calls["n"] += 1
        return None if calls["n"] == 1 else normal_reply(request)

    async with tallying_server(silent_once) as (port, _):
        (first,), _ = await run([Target(HOST, port)], timeout=0.1)
        calls["n"] = 0
        (second,), _ = await run([Target(HOST, port)], timeout=0.1, retries=1)
    assert first.outcome is Outcome.TIMEOUT
    assert second.outcome is Outcome.OK


async def test_identification_reads_objects_across_more_follows() -> None:
    long = b"x" * 120  # two objects this size cannot share one reply
    identification = DeviceIdentification(
        vendor_name=b"Acme",
        product_code=b"PLC-9",
        major_minor_revision=b"1.2",
        vendor_url=long,
        product_name=long,
        model_name=b"M9",
    )
    with pymodbustcp_server({0: [7]}, identification) as port:
        (result,), _ = await run([Target(HOST, port)], identify=True)
    assert result.identity is not None
    named = result.identity.named()
    assert named["vendor_name"] == "Acme"
    assert named["product_code"] == "PLC-9"
    assert named["revision"] == "1.2"
    assert named["vendor_url"] == named["product_name"] == "x" * 120
    assert named["model_name"] == "M9"
    # pyModbusTCP drops the connection on a bare 0x11 request: recorded, not fatal
    assert result.identity.server_id is None
    assert any(e.startswith("server id: reset") for e in result.identity.errors)
    assert result.outcome is Outcome.OK


async def test_results_stream_as_they_finish_and_the_summary_adds_up() -> None:
    async with AsyncExitStack() as stack:
        good, _ = await stack.enter_async_context(tallying_server(normal_reply))
        silent, _ = await stack.enter_async_context(tallying_server(None))
        with refusing_port() as refused:
            results, scanner = await run(
                [Target(HOST, p) for p in (good, silent, refused)],
                per_host=3,
                timeout=0.2,
            )
    assert results[0].outcome is not Outcome.TIMEOUT  # the slow one is last
    assert scanner.summary.outcomes == {"ok": 1, "timeout": 1, "refused": 1}
    assert "1 device(s) answered on 1 of 3 target(s)" in scanner.summary.line()


async def test_the_rate_limit_spaces_new_connections() -> None:
    now = [100.0]
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(round(seconds, 6))
        now[0] += seconds

    limiter = RateLimiter(4, clock=lambda: now[0], sleep=fake_sleep)
    for _ in range(4):
        await limiter.acquire()
    assert waits == [0.25, 0.25, 0.25]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"units": []}, "no unit ids"),
        ({"concurrency": 0}, "concurrency 0"),
        ({"per_host": 0}, "per-host limit 0"),
        ({"rate": -1}, "rate -1"),
        ({"retries": -1}, "retries -1"),
        ({"timeout": 0}, "response timeout 0 must be more than 0"),
        ({"connect_timeout": float("nan")}, "connect timeout nan must be more than 0"),
    ],
)
def test_impossible_options_are_usage_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ScanOptions(**options)  # type: ignore[arg-type]


async def test_stopping_early_closes_every_connection() -> None:
    async with tallying_server(None) as (port, tally):
        scanner = Scanner([Target(HOST, port)], ScanOptions(units=range(1, 248), timeout=5))
        results = scanner.results()
        task = asyncio.ensure_future(anext(results))
        while tally.open == 0:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await results.aclose()
        deadline = asyncio.get_running_loop().time() + 2
        while tally.open and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
    assert tally.open == 0


def silent_for_even_units(request: bytes) -> bytes | None:
    return None if request[6] % 2 == 0 else normal_reply(request)


async def test_per_host_lets_several_connections_share_one_targets_sweep() -> None:
    async with tallying_server(None) as (port, tally):
        results, scanner = await run(
            [Target(HOST, port)], units=range(1, 9), per_host=4, timeout=0.3
        )
    assert sorted(r.unit or 0 for r in results) == list(range(1, 9))  # each unit once
    assert {r.outcome for r in results} == {Outcome.TIMEOUT}
    assert tally.max_open == 4  # silent units cost their timeouts four at a time
    assert tally.accepted == scanner.summary.connections == 4


async def test_a_device_with_fewer_slots_than_per_host_is_swept_over_the_slots_it_has() -> None:
    async with tallying_server(silent_for_even_units, slots=2) as (port, tally):
        results, _ = await run([Target(HOST, port)], units=range(1, 13), per_host=4, timeout=0.2)
    by_unit = {r.unit: r.outcome for r in results}
    assert len(results) == len(by_unit) == 12  # no unit reported twice, none lost
    assert by_unit == {u: Outcome.TIMEOUT if u % 2 == 0 else Outcome.OK for u in range(1, 13)}
    assert tally.max_open == 2
    assert tally.turned_away == 2  # the two lanes over the limit gave their units back


async def test_a_refused_target_costs_one_connect_and_one_row_whatever_per_host() -> None:
    with refusing_port() as port:
        results, scanner = await run([Target(HOST, port)], units=range(1, 248), per_host=4)
    (result,) = results
    assert result.outcome is Outcome.REFUSED
    assert "247 unit ids not probed" in result.reason
    assert scanner.summary.connections == 1


async def test_lanes_count_against_the_concurrency_limit() -> None:
    tally = Tally()
    async with AsyncExitStack() as stack:
        ports = [
            (await stack.enter_async_context(tallying_server(None, tally=tally)))[0]
            for _ in range(2)
        ]
        results, _ = await run(
            [Target(HOST, p) for p in ports],
            units=range(1, 7),
            concurrency=3,
            per_host=4,
            timeout=0.1,
        )
    assert len(results) == 12
    assert tally.max_open == 3


@pytest.mark.parametrize("mode", ["close", "reset"])
async def test_lanes_over_a_simulated_gateways_connection_limit_lose_no_unit(mode: str) -> None:
    async with ModbusSimulator([load_profile("gateway")]) as sim:
        sim.add_fault(Fault(kind="refuse", limit=2, mode=mode))
        for unit in (4, 5, 6):  # slow the sweep down so that every lane gets going
            sim.add_fault(Fault(kind="silence", unit=unit))
        results, _ = await run([Target(*sim.address)], units=range(1, 13), per_host=4, timeout=0.2)
        refused = sim.counters.faults["refuse"]
    assert refused >= 1  # lanes really ran into the limit
    by_unit = {r.unit: (r.outcome, r.exception_code) for r in results}
    assert len(results) == len(by_unit) == 12
    expected = {u: (Outcome.EXCEPTION, 0x0B) for u in range(1, 13)}  # absent
    expected |= {1: (Outcome.OK, None), 2: (Outcome.OK, None)}
    expected |= {10: (Outcome.EXCEPTION, 0x02)}  # unit 10 has no register 0
    expected |= {u: (Outcome.TIMEOUT, None) for u in (4, 5, 6)}
    assert by_unit == expected
