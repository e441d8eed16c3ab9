"""A probe classifies what really happens on the wire into exactly one outcome."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import threading

import pytest
from pyModbusTCP.server import DeviceIdentification

from mcptool.errors import UsageError
from mcptool.modbus.connection import Outcome
from mcptool.modbus.mbap import MalformedField
from mcptool.modbus.pdu import ReadOnlyError
from mcptool.modbus.probe import ResolveError, probe, probe_sync
from tests.conftest import require_program
from tests.modbus.peers import (
    banner_service,
    exception_reply,
    normal_reply,
    pymodbustcp_server,
    raw_server,
    refusing_port,
    unreachable_port,
)

HOST = "127.0.0.1"


async def test_an_answering_device_is_ok_with_values_and_both_timings() -> None:
    with pymodbustcp_server({0: [11, 22, 33]}) as port:
        result = await probe(HOST, port, count=3)
    assert result.outcome is Outcome.OK
    assert result.values == (11, 22, 33)
    assert result.answered
    assert result.connect_ms is not None and result.connect_ms > 0
    assert result.response_ms is not None and result.response_ms > 0


async def test_coils_and_inputs_can_be_read_too() -> None:
    with pymodbustcp_server() as port:
        coils = await probe(HOST, port, function=1, count=10)
        inputs = await probe(HOST, port, function=4, address=100, count=2)
    assert coils.values == (False,) * 10
    assert inputs.values == (0, 0)


async def test_an_exception_reply_is_reported_with_its_code_and_name() -> None:
    async with raw_server(lambda request: exception_reply(request, 2)) as port:
        result = await probe(HOST, port)
    assert result.outcome is Outcome.EXCEPTION
    assert (result.exception_code, result.exception_name) == (2, "illegal data address")
    assert result.answered


@pytest.mark.parametrize("code", [0x0A, 0x0B])
async def test_gateway_exceptions_mean_the_device_is_absent(code: int) -> None:
    async with raw_server(lambda request: exception_reply(request, code)) as port:
        result = await probe(HOST, port, unit=7)
    assert result.outcome is Outcome.EXCEPTION
    assert result.device_absent
    assert not result.answered
    assert "gateway answered, device absent" in result.reason


async def test_a_connected_silent_peer_is_a_timeout() -> None:
    async with raw_server(None) as port:
        result = await probe(HOST, port, timeout=0.2)
    assert result.outcome is Outcome.TIMEOUT
    assert result.connect_ms is not None


async def test_a_port_nobody_listens_on_is_refused() -> None:
    with refusing_port() as port:
        result = await probe(HOST, port)
    assert result.outcome is Outcome.REFUSED
    assert result.connect_ms is None


async def test_a_connect_that_gets_no_answer_is_unreachable() -> None:
    with unreachable_port() as port:
        result = await probe(HOST, port, connect_timeout=0.2)
    assert result.outcome is Outcome.UNREACHABLE
    assert "connect timed out" in result.reason


async def test_a_peer_that_closes_without_replying_is_closed() -> None:
    async with raw_server(None, then="close") as port:
        result = await probe(HOST, port)
    assert result.outcome is Outcome.CLOSED


async def test_a_peer_that_resets_without_replying_is_reset() -> None:
    async with raw_server(None, then="reset") as port:
        result = await probe(HOST, port)
    assert result.outcome is Outcome.RESET


async def test_a_reply_then_close_is_still_an_answer() -> None:
    async with raw_server(normal_reply, then="close") as port:
        result = await probe(HOST, port)
    assert result.outcome is Outcome.OK


async def test_a_service_that_is_not_modbus_is_malformed_by_protocol_id() -> None:
    with banner_service() as port:
        result = await probe(HOST, port)
    assert result.outcome is Outcome.MALFORMED
    assert result.malformed is MalformedField.PROTOCOL_ID
    assert not result.answered


@pytest.mark.parametrize(
    ("mangle", "field"),
    [
        (lambda b: b[:2] + b"\x00\x07" + b[4:], MalformedField.PROTOCOL_ID),
        (lambda b: b[:4] + b"\x00\x09" + b[6:], MalformedField.LENGTH),
        (lambda b: b"\x12\x34" + b[2:], MalformedField.TRANSACTION_ID),
        (lambda b: b[:6] + b"\x09" + b[7:], MalformedField.UNIT),
        (lambda b: b[:7] + b"\x10" + b[8:], MalformedField.FUNCTION),
        (lambda b: b[:8] + b"\x04" + b[9:], MalformedField.BYTE_COUNT),
    ],
)
async def test_a_reply_with_one_bad_field_is_malformed_naming_that_field(
    mangle: object, field: MalformedField
) -> None:
    async with raw_server(lambda request: mangle(normal_reply(request))) as port:  # type: ignore[operator]
        result = await probe(HOST, port, timeout=0.5)
    assert result.outcome is Outcome.MALFORMED
    assert result.malformed is field


async def test_half_a_reply_then_silence_is_malformed_length() -> None:
    async with raw_server(lambda request: normal_reply(request)[:9]) as port:
        result = await probe(HOST, port, timeout=0.2)
    assert result.outcome is Outcome.MALFORMED
    assert result.malformed is MalformedField.LENGTH
    assert "incomplete reply: 9 bytes" in result.reason


@pytest.mark.parametrize("function", [5, 6, 8, 15, 16, 22, 23])
async def test_write_and_diagnostic_codes_are_refused_before_connecting(function: int) -> None:
    accepted = threading.Event()
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(1)
    listener.settimeout(0.1)

    def watch() -> None:
        try:
            listener.accept()[0].close()
            accepted.set()
        except OSError:
            pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with pytest.raises(ReadOnlyError):
            await probe(HOST, listener.getsockname()[1], function=function)
    finally:
        watcher.join()
        listener.close()
    assert not accepted.is_set()


async def test_an_out_of_range_unit_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unit id 300"):
        await probe(HOST, 502, unit=300)


@pytest.mark.parametrize(
    ("timeouts", "message"),
    [
        ({"timeout": float("nan")}, "response timeout nan"),
        ({"connect_timeout": 0}, "connect timeout 0"),
        ({"timeout": float("inf")}, "response timeout inf"),
    ],
)
async def test_timeouts_that_are_not_a_positive_number_are_usage_errors(
    timeouts: dict[str, float], message: str
) -> None:
    # Refused by the one Timeouts rule before a connection is opened (a NaN deadline
    # used to report every target as a timeout).
    with pytest.raises(UsageError, match=message):
        await probe(HOST, 502, **timeouts)  # type: ignore[arg-type]


async def test_a_name_that_does_not_resolve_is_one_clear_error() -> None:
    with pytest.raises(ResolveError, match=r"cannot resolve host 'no-such-host\.invalid'"):
        await probe("no-such-host.invalid", 502)


async def test_a_host_name_is_resolved_and_probed() -> None:
    with pymodbustcp_server({0: [5]}) as port:
        result = await probe("localhost", port)
    assert result.outcome in (Outcome.OK, Outcome.REFUSED)  # localhost may resolve to ::1
    if result.outcome is Outcome.REFUSED:
        pytest.skip("localhost resolved to ::1 first, where the server does not listen")
    assert result.values == (5,)


def test_the_sync_facade_probes_without_an_event_loop() -> None:
    identification = DeviceIdentification(vendor_name=b"acme")
    with pymodbustcp_server({0: [42]}, identification) as port:
        result = probe_sync(HOST, port, unit=3)
    assert (result.outcome, result.values, result.unit) == (Outcome.OK, (42,), 3)


async def test_many_probes_at_once_each_get_their_own_answer() -> None:
    async with raw_server(lambda r: normal_reply(r, (r[6],))) as port:
        results = await asyncio.gather(*(probe(HOST, port, unit=u) for u in range(1, 65)))
    assert [r.values for r in results] == [(u,) for u in range(1, 65)]


@pytest.mark.peer
def test_probe_reads_the_same_values_as_mbpoll() -> None:
    mbpoll = require_program("mbpoll")
    with pymodbustcp_server({10: [1, 65535, 4660]}) as port:
        done = subprocess.run(
            [mbpoll, "-m", "tcp", "-p", str(port), "-a", "1", "-0", "-r", "10", "-c", "3",
             "-1", HOST],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        ours = probe_sync(HOST, port, address=10, count=3)
    assert done.returncode == 0, done.stdout + done.stderr
    theirs = [int(v) for v in re.findall(r"^\[\d+\]:\s+(-?\d+)", done.stdout, re.MULTILINE)]
    # mbpoll prints registers as signed 16-bit numbers
    assert [v if v >= 0 else v + 65536 for v in theirs] == list(ours.values or ())


async def test_ipv6_loopback_is_probed_like_ipv4() -> None:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6")
    try:
        async with raw_server(normal_reply, host="::1") as port:
            result = await probe("::1", port)
    except OSError as exc:
        pytest.skip(f"::1 is not configured here: {exc}")
    assert (result.outcome, result.target) == (Outcome.OK, f"[::1]:{port}")
