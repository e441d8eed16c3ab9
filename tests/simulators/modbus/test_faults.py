"""Fault specs (the CLI syntax) and triggers: every, probability, times, scope, window."""

from __future__ import annotations

import pytest

from simulators.modbus import Fault, FaultError, parse_fault


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("latency:0.2,unit=1,every=3", {"kind": "latency", "seconds": 0.2, "unit": 1, "every": 3}),
        ("latency:0.05-0.5", {"seconds": 0.05, "max_seconds": 0.5}),
        ("exception:0x06,function=3", {"kind": "exception", "code": 6, "function": 3}),
        ("silence,probability=0.1,seed=7", {"probability": 0.1, "seed": 7}),
        ("reset,times=1", {"kind": "reset", "times": 1}),
        ("close_after:5", {"after": 5}),
        ("garbage:deadbeef", {"data": b"\xde\xad\xbe\xef"}),
        ("garbage,size=8", {"size": 8}),
        ("fragment:4,pause=0.1", {"pieces": 4, "pause": 0.1}),
        ("wrong_tid", {"kind": "wrong_tid", "value": None}),
        ("corrupt:byte_count,value=9", {"field": "byte_count", "value": 9}),
        ("refuse:2,mode=backlog", {"limit": 2, "mode": "backlog"}),
        ("exception:2,address=100-199,device=boiler", {"address": (100, 199), "device": "boiler"}),
        ("latency:1,address=7,device=2", {"address": (7, 7), "device": 2}),
        (" Close-After:2 ", {"kind": "close_after", "after": 2}),
        ("silence,from=14", {"kind": "silence", "since": 14.0, "until": None}),
        ("refuse,until=5", {"kind": "refuse", "since": None, "until": 5.0}),
        (
            "exception:4,device=boiler,from=10,until=20.5",
            {"code": 4, "device": "boiler", "since": 10.0, "until": 20.5},
        ),
    ],
)
def test_spec_syntax(spec: str, expected: dict[str, object]) -> None:
    fault = parse_fault(spec)
    for key, value in expected.items():
        assert getattr(fault, key) == value, key


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("latncy:0.2", 'fault "latncy:0.2": kind: unknown fault "latncy"'),
        ("latency:x", 'seconds: expected a finite number, got "x"'),
        ("latency:inf", 'seconds: expected a finite number, got "inf"'),
        ("latency:0.1,probability=nan", 'probability: expected a finite number, got "nan"'),
        ("latency:0.2,unti=1", "unti: unknown key"),
        ("latency:0.2,unit", '"unit": expected key=value'),
        ("silence:3", '"silence" takes no ":" argument'),
        ("exception:300", "code: an exception code 1..255"),
        ("corrupt:crc", 'field: unknown field "crc"'),
        ("refuse:1,mode=drop", 'mode: unknown mode "drop"'),
        ("latency:0.2,probability=2", "probability: must be between 0 and 1"),
        ("latency:0.5-0.1", "max_seconds: must be >= seconds"),
        ("fragment:1", "pieces: must be >= 2"),
        ("garbage:xyz", 'data: expected hex bytes, got "xyz"'),
        ("exception:2,address=9-3", "address: must be 0..65535"),
        ("latency:1,every=0", "every: must be >= 1"),
        ("silence,from=x", 'from: expected a finite number, got "x"'),
        ("silence,until=inf", 'until: expected a finite number, got "inf"'),
        ("silence,from=-1", "from: must be >= 0 (seconds since the simulator started)"),
        ("silence,from=20,until=10", "until: must be after from"),
        ("silence,from=10,until=10", "until: must be after from"),
        ("silence,until=0", "until: must be > 0"),
    ],
)
def test_bad_specs_name_the_field(spec: str, message: str) -> None:
    with pytest.raises(FaultError) as caught:
        parse_fault(spec)
    assert message in str(caught.value)


def test_fault_built_in_code_is_checked_too() -> None:
    with pytest.raises(FaultError, match="kind: unknown fault"):
        Fault(kind="slow")


def test_every_fires_on_each_nth_request_in_scope() -> None:
    fault = Fault(kind="silence", every=3)
    assert [fault.trigger() for _ in range(7)] == [False, False, True] * 2 + [False]


def test_times_limits_how_often_a_fault_fires() -> None:
    fault = Fault(kind="silence", times=2)
    assert [fault.trigger() for _ in range(4)] == [True, True, False, False]
    assert fault.fired == 2


def test_probability_draws_from_a_seeded_rng() -> None:
    a = Fault(kind="silence", probability=0.3, seed=1)
    b = Fault(kind="silence", probability=0.3, seed=1)
    draws = [a.trigger() for _ in range(200)]
    assert draws == [b.trigger() for _ in range(200)]
    assert 30 < sum(draws) < 90


def test_scope_matches_unit_function_and_overlapping_addresses() -> None:
    fault = Fault(kind="silence", unit=1, function=3, address=(10, 19))
    assert fault.covers(1, 3, 5, 10, 0.0)
    assert fault.covers(1, 3, 19, 30, 0.0)
    assert not fault.covers(1, 3, 20, 30, 0.0)
    assert not fault.covers(2, 3, 10, 10, 0.0)
    assert not fault.covers(1, 4, 10, 10, 0.0)
    assert not fault.covers(1, 3, -1, -1, 0.0)  # a request without an address


def test_a_window_holds_from_its_start_inclusive_to_its_end_exclusive() -> None:
    fault = Fault(kind="silence", since=14, until=40)
    assert [fault.active(t) for t in (0, 13.999, 14, 39.999, 40, 100)] == [
        False, False, True, True, False, False,
    ]  # fmt: skip
    assert fault.covers(1, 3, 0, 0, 14) and not fault.covers(1, 3, 0, 0, 40)


def test_a_window_open_at_one_end_holds_from_the_start_or_forever() -> None:
    assert [Fault(kind="silence", until=5).active(t) for t in (0, 4.9, 5)] == [True, True, False]
    assert [Fault(kind="silence", since=5).active(t) for t in (4.9, 5, 1e9)] == [False, True, True]
    assert Fault(kind="silence").active(1e9)


def test_next_edge_is_the_time_to_the_next_opening_or_closing() -> None:
    fault = Fault(kind="refuse", since=14, until=40)
    assert fault.next_edge(0) == 14
    assert fault.next_edge(14) == 26  # at the opening, the next edge is the closing
    assert fault.next_edge(40) is None
    assert Fault(kind="refuse").next_edge(0) is None


def test_requests_outside_the_window_do_not_count_towards_every_or_times() -> None:
    fault = Fault(kind="silence", every=2, times=1, since=10)
    fired = [fault.covers(1, 3, 0, 0, t) and fault.trigger() for t in (1, 2, 3, 10, 11, 12, 13)]
    assert fired == [False, False, False, False, True, False, False]
