"""Handshake slots under a flood, and the refusal log that stays short whatever happens."""

from __future__ import annotations

import pytest

from mcptool.link.admission import OTHERS, Admission, RefusalLog, address_key

NOW = 100.0  # long after every grace period


def test_a_new_stranger_turns_the_oldest_stranger_away_when_the_pool_is_full() -> None:
    admission = Admission(max_handshakes=4, reserved=1, per_address=16)
    assert [admission.admit(k, f"10.0.0.{k}", NOW) for k in (1, 2, 3)] == [None, None, None]
    assert admission.admit(4, "10.0.0.4", NOW) == 1
    assert not admission.admits(1) and admission.admits(4)
    assert len(admission) == admission.strangers == 3


def test_an_address_over_its_share_turns_away_only_its_own_oldest() -> None:
    admission = Admission(max_handshakes=10, reserved=2, per_address=2, grace=0.5)
    admission.admit("victim", "10.0.0.1", 0.0)
    admission.admit("a1", "10.0.0.7", 1.0)
    admission.admit("a2", "10.0.0.7", 2.0)
    assert admission.admit("a3", "10.0.0.7", 3.0) == "a1"
    assert admission.admit("a4", "10.0.0.7", 4.0) == "a2"
    assert admission.admits("victim")


def test_a_burst_from_one_address_gets_in_beyond_its_share_while_the_pool_has_room() -> None:
    # Nodes behind one NAT address reconnecting together after a hub restart: each needs
    # the moment between its connect and its HELLO, so the share waits for the grace.
    admission = Admission(max_handshakes=10, reserved=2, per_address=2, grace=0.5)
    assert [admission.admit(n, "10.0.0.1", 1.0 + n / 1000) for n in range(8)] == [None] * 8
    assert admission.admit("late", "10.0.0.1", 1.6) == 0  # the share again, past the grace
    assert admission.admit("ninth", "10.0.0.9", 1.6) == 1  # the pool is full: the oldest


def test_a_hello_naming_a_known_node_moves_it_out_of_the_strangers_reach() -> None:
    admission = Admission(max_handshakes=3, reserved=1, per_address=16)
    admission.admit("node", "10.0.0.1", NOW)
    admission.hello("node", "node-1", known=True)
    assert admission.known == 1 and admission.strangers == 0
    # Strangers now churn among themselves; the known node keeps its slot.
    evicted = [admission.admit(k, "10.0.0.9", NOW) for k in range(10)]
    assert "node" not in evicted and admission.admits("node")
    admission.finished("node")
    assert admission.known == 0 and not admission.admits("node")


def test_unknown_node_ids_and_a_second_hello_of_one_id_stay_strangers() -> None:
    admission = Admission(max_handshakes=8, reserved=4, per_address=16)
    for key in ("x", "y", "z"):
        admission.admit(key, "10.0.0.1", NOW)
    admission.hello("x", "nobody", known=False)
    admission.hello("y", "node-1", known=True)
    admission.hello("z", "node-1", known=True)  # one reserved slot per node id
    assert admission.known == 1 and admission.strangers == 2


def test_the_reserved_pool_when_full_leaves_a_known_node_a_stranger() -> None:
    admission = Admission(max_handshakes=3, reserved=1, per_address=16)
    admission.admit("a", "10.0.0.1", NOW)
    admission.admit("b", "10.0.0.1", NOW)
    admission.hello("a", "node-1", known=True)
    admission.hello("b", "node-2", known=True)
    assert admission.known == 1 and admission.strangers == 1


def test_finished_is_idempotent_and_frees_the_address_share() -> None:
    admission = Admission(max_handshakes=4, reserved=1, per_address=1)
    admission.admit("a", "10.0.0.1", NOW)
    admission.finished("a")
    admission.finished("a")
    assert admission.admit("b", "10.0.0.1", NOW) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_handshakes": 4, "reserved": 4}, "reserved"),
        ({"per_address": 0}, "per address"),
    ],
)
def test_limits_that_cannot_work_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Admission(**options)


def test_the_first_refusal_is_told_at_once_and_the_rest_once_per_interval() -> None:
    log = RefusalLog(interval=60.0)
    assert log.refused("127.0.0.7", "wrong key", "authentication failed: wrong key", 0.0) == (
        "handshake from 127.0.0.7 refused: authentication failed: wrong key"
    )
    for i in range(411):
        assert log.refused("127.0.0.7", "timeout" if i % 40 else "busy", "…", 1.0 + i / 10) is None
    assert log.next_deadline() == 60.0
    assert log.due(59.0) == []
    assert log.due(60.0) == [
        "411 handshakes refused from 127.0.0.7 in the last 60 s: 400 timeout, 11 busy"
    ]
    # Still refusing: counted from now on, no line at once. Quiet: forgotten.
    assert log.refused("127.0.0.7", "timeout", "…", 61.0) is None
    assert log.due(120.0) == ["1 handshake refused from 127.0.0.7 in the last 60 s: 1 timeout"]
    assert log.due(180.0) == [] and len(log) == 0
    assert log.refused("127.0.0.7", "timeout", "no HELLO", 200.0) is not None


def test_a_flood_from_any_number_of_addresses_writes_a_bounded_number_of_lines() -> None:
    log = RefusalLog(interval=60.0, max_addresses=8)
    told = [
        line
        for n in range(100_000)
        if (line := log.refused(f"10.{n % 250}.{n // 250 % 250}.1", "timeout", "…", n / 2000))
    ]
    summaries = log.due(61.0)
    assert len(told) == 9 and len(summaries) == 9  # 8 addresses one by one, the rest as one
    # Every refusal is in a line: told at once, or counted in a summary.
    assert len(told) + sum(int(line.split()[0]) for line in summaries) == 100_000
    assert any(f"refused from {OTHERS} in the last" in line for line in summaries)


def test_flush_tells_every_tally_once() -> None:
    log = RefusalLog()
    log.refused("a", "busy", "…", 0.0)
    log.refused("a", "busy", "…", 1.0)
    assert log.flush(5.0) == ["1 handshake refused from a in the last 5 s: 1 busy"]
    assert log.flush(6.0) == []


@pytest.mark.parametrize(
    ("peername", "key"),
    [
        (("127.0.0.7", 4242), "127.0.0.7"),
        (("2001:db8::1", 4242, 0, 0), "2001:db8::/64"),
        (("2001:db8::ffff:1", 1, 0, 0), "2001:db8::/64"),
        (("::ffff:10.0.0.1", 1, 0, 0), "10.0.0.1"),
        (("fe80::1%eth0", 1, 0, 2), "fe80::/64"),
        (None, "unknown"),
        ("/tmp/hub.sock", "unknown"),
    ],
)
def test_addresses_are_counted_per_host_and_per_ipv6_64(peername: object, key: str) -> None:
    assert address_key(peername) == key
