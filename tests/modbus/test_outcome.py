"""One classification of failures: probe's Outcome and the poller's ErrorKind are two views
of the same Cause, so the two can never disagree about what happened."""

from __future__ import annotations

import errno

import pytest

from mcptool.modbus.outcome import (
    Cause,
    ErrorKind,
    Outcome,
    classify_connect_error,
    exception_kind,
)


@pytest.mark.parametrize(
    ("cause", "outcome", "kind"),
    [
        (Cause.REFUSED, Outcome.REFUSED, ErrorKind.REFUSED),
        (Cause.CONNECT_TIMEOUT, Outcome.UNREACHABLE, ErrorKind.CONNECT_TIMEOUT),
        (Cause.UNREACHABLE, Outcome.UNREACHABLE, ErrorKind.UNREACHABLE),
        (Cause.TIMEOUT, Outcome.TIMEOUT, ErrorKind.TIMEOUT),
        (Cause.CLOSED, Outcome.CLOSED, ErrorKind.RESET),
        (Cause.RESET, Outcome.RESET, ErrorKind.RESET),
        (Cause.MALFORMED, Outcome.MALFORMED, ErrorKind.MALFORMED),
    ],
)
def test_each_cause_is_one_outcome_for_a_probe_and_one_kind_for_the_poller(
    cause: Cause, outcome: Outcome, kind: ErrorKind
) -> None:
    assert (cause.outcome, cause.kind) == (outcome, kind)


def test_every_failure_outcome_and_every_connection_kind_has_a_cause() -> None:
    assert {c.outcome for c in Cause} == set(Outcome) - {Outcome.OK, Outcome.EXCEPTION}
    assert {c.kind for c in Cause} == set(ErrorKind) - {
        ErrorKind.EXCEPTION,
        ErrorKind.ILLEGAL_ADDRESS,
    }


def test_a_connect_timeout_is_unreachable_to_a_probe_and_told_apart_by_the_poller() -> None:
    failure = classify_connect_error(TimeoutError())
    assert (failure.outcome, failure.kind) == (Outcome.UNREACHABLE, ErrorKind.CONNECT_TIMEOUT)
    routed = classify_connect_error(OSError(errno.EHOSTUNREACH, "No route to host"))
    assert (routed.outcome, routed.kind) == (Outcome.UNREACHABLE, ErrorKind.UNREACHABLE)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (0x02, ErrorKind.ILLEGAL_ADDRESS),
        (0x03, ErrorKind.ILLEGAL_ADDRESS),
        (0x04, ErrorKind.EXCEPTION),
        (0x07, ErrorKind.EXCEPTION),
        (0x0B, ErrorKind.EXCEPTION),
    ],
)
def test_exception_replies_that_refuse_points_are_told_from_device_trouble(
    code: int, kind: ErrorKind
) -> None:
    assert exception_kind(code) is kind
