"""The sender's outbox: numbering, the window, cumulative ACKs and the resume rule."""

from __future__ import annotations

import gc
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from mcptool.link import JournalLedger, MemoryLedger, Outbox, OutboxFull


def sent(outbox: Outbox, limit: int = 100) -> list[int]:
    return [item.seq for item in outbox.take(limit)]


def test_frames_are_numbered_when_first_sent_from_the_resume_point() -> None:
    outbox = Outbox()
    outbox.push(b"a")
    outbox.push(b"b")
    outbox.resume(10, first_session=True)
    assert sent(outbox) == [11, 12]


def test_take_respects_the_limit_and_continues_where_it_stopped() -> None:
    outbox = Outbox()
    for body in b"abcde":
        outbox.push(bytes([body]))
    outbox.resume(0, first_session=True)
    assert sent(outbox, 2) == [1, 2]
    assert outbox.in_flight == 2
    assert sent(outbox, 2) == [3, 4]


def test_a_cumulative_ack_drops_every_frame_up_to_it() -> None:
    outbox = Outbox()
    ids = [outbox.push(b"x") for _ in range(4)]
    outbox.resume(0, first_session=True)
    sent(outbox)
    assert outbox.acknowledge(3) == ids[2]
    assert len(outbox) == 1
    assert outbox.in_flight == 1


def test_an_ack_for_nothing_new_acknowledges_nothing() -> None:
    outbox = Outbox()
    outbox.push(b"x")
    outbox.resume(0, first_session=True)
    sent(outbox)
    assert outbox.acknowledge(0) == 0


def test_after_a_lost_connection_everything_unacked_goes_out_again_same_numbers() -> None:
    outbox = Outbox()
    for _ in range(3):
        outbox.push(b"x")
    outbox.resume(0, first_session=True)
    sent(outbox)
    outbox.connection_lost()
    assert outbox.resume(1, first_session=False) > 0
    assert sent(outbox) == [2, 3]


def test_a_receiver_ahead_of_this_outbox_gets_renumbered_frames() -> None:
    outbox = Outbox()
    outbox.push(b"x")
    outbox.resume(0, first_session=True)
    sent(outbox)
    outbox.connection_lost()
    assert outbox.resume(50, first_session=False) == 0  # acknowledges nothing of ours
    assert sent(outbox) == [51]


def test_the_capacity_is_the_backpressure() -> None:
    outbox = Outbox(capacity=1)
    outbox.push(b"x")
    with pytest.raises(OutboxFull):
        outbox.push(b"y")


def test_the_memory_ledger_starts_at_zero_per_node() -> None:
    ledger = MemoryLedger()
    ledger.advance("a", 5)
    assert (ledger.last("a"), ledger.last("b")) == (5, 0)


def test_the_journal_ledger_resumes_from_its_file_and_cuts_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(
        b'{"node": "a", "seq": 1, "data": "x"}\n'
        b'{"node": "a", "seq": 2, "data": "y"}\n'
        b'{"node": "b", "seq": 7, "data": "z"}\n'
        b'{"node": "a", "seq": 3, "da'  # the hub died in the middle of this line
    )
    with JournalLedger(path) as ledger:
        assert (ledger.last("a"), ledger.last("b"), ledger.recovered) == (2, 7, 3)
        ledger.record("a", 3, b"\xff\x00")
    lines = path.read_text().splitlines()
    assert len(lines) == 4
    assert json.loads(lines[-1]) == {"node": "a", "seq": 3, "data_b64": "/wA="}
    with JournalLedger(path) as reopened:
        assert reopened.last("a") == 3


def resource_warnings_while(action: Callable[[], None]) -> list[str]:
    """The ResourceWarnings raised while ``action()`` runs and its garbage is collected."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        action()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_a_journal_ledger_that_is_closed_leaves_no_open_file(tmp_path: Path) -> None:
    def use_and_close() -> None:
        ledger = JournalLedger(tmp_path / "journal.jsonl")
        ledger.record("a", 1, b"x")
        ledger.close()

    def use_and_forget() -> None:
        JournalLedger(tmp_path / "journal.jsonl").record("a", 2, b"y")

    assert resource_warnings_while(use_and_close) == []
    # the check above can fail: a ledger nobody closes is reported
    assert resource_warnings_while(use_and_forget) != []


def test_closing_a_journal_ledger_twice_is_harmless(tmp_path: Path) -> None:
    ledger = JournalLedger(tmp_path / "journal.jsonl")
    ledger.record("a", 1, b"x")
    ledger.close()
    ledger.close()
    assert ledger.closed
    assert len((tmp_path / "journal.jsonl").read_text().splitlines()) == 1


def test_a_journal_whose_last_flush_fails_is_closed_all_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fsync_fails(fd: int) -> None:
        raise OSError(5, "Input/output error")

    ledger = JournalLedger(tmp_path / "journal.jsonl", fsync=True)
    ledger.record("a", 1, b"x")
    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(OSError, match="Input/output error"):
        ledger.close()
    assert ledger.closed
