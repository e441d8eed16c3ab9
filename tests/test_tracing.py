"""``mcptool.tracing``'s log stamping and exemplars: a line written inside a span of a
recorded trace ends with its id, as does an exemplar name it; otherwise nothing."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

from mcptool.tracing import exemplar, log_trace_ids

TRACE = 0x0AF7651916CD43DD8448EB211C80319C


def span(sampled: bool) -> NonRecordingSpan:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return NonRecordingSpan(SpanContext(TRACE, 0x00F067AA0BA902B7, True, flags))


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """The root logger's lines in the hub's and the worker's format, ended by
    ``log_trace_ids(end_lines=True)`` as their ``--otlp`` does."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    log_trace_ids(end_lines=True)
    log_trace_ids(end_lines=True)  # twice: still one ending
    yield text
    root.removeHandler(handler)


def test_a_line_inside_a_recorded_span_ends_with_its_trace_id(lines: io.StringIO) -> None:
    log = logging.getLogger("mcptool.test")
    with use_span(span(sampled=True)):
        log.warning("window %d failed", 3)
    log.warning("outside")
    assert lines.getvalue().splitlines() == [
        "WARNING window 3 failed trace_id=0af7651916cd43dd8448eb211c80319c",
        "WARNING outside",
    ]


def test_a_traceback_stays_below_the_line_that_names_the_trace(lines: io.StringIO) -> None:
    with use_span(span(sampled=True)):
        try:
            raise ValueError("bad")
        except ValueError:
            logging.getLogger("mcptool.test").exception("store failed")
    first, *rest = lines.getvalue().splitlines()
    assert first == "ERROR store failed trace_id=0af7651916cd43dd8448eb211c80319c"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: bad"


def test_a_trace_the_sampler_left_out_is_named_nowhere(lines: io.StringIO) -> None:
    with use_span(span(sampled=False)):
        logging.getLogger("mcptool.test").warning("not recorded")
        assert exemplar() is None
    assert lines.getvalue() == "WARNING not recorded\n"


def test_an_exemplar_names_the_current_recorded_trace() -> None:
    assert exemplar() is None  # no span
    with use_span(span(sampled=True)):
        assert exemplar() == {"trace_id": "0af7651916cd43dd8448eb211c80319c"}
