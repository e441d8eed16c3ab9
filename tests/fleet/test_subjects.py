"""Names on the NATS side: every node id and device name is one reversible token."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mcptool.fleet import data_subject, finding_id, reading_id, token, untoken
from mcptool.fleet.subjects import device_of, node_devices_filter


def test_plain_names_are_their_own_token() -> None:
    assert token("node-1") == "node-1"
    assert data_subject("node-1", "boiler_2") == "fleet.data.node-1.dev.boiler_2"


def test_a_frame_that_is_no_poll_has_a_subject_no_device_can_have() -> None:
    assert data_subject("n", None) == "fleet.data.n.raw"
    assert data_subject("n", "raw") == "fleet.data.n.dev.raw"


def test_dots_wildcards_and_spaces_are_escaped() -> None:
    assert token("a.b *>") == "a%2Eb%20%2A%3E"
    assert token("") == "%"


@given(st.text(min_size=0, max_size=30))
def test_token_is_reversible_and_a_single_subject_token(name: str) -> None:
    escaped = token(name)
    assert untoken(escaped) == name
    assert not any(c in escaped for c in ".*> \t\r\n")
    assert escaped.isascii() and escaped


def test_ids_are_the_same_on_every_hub() -> None:
    assert reading_id("node-1", 42) == "node-1:42"
    assert finding_id("node-1", "boiler", 7) == "finding:node-1/boiler@7"


@given(st.text(min_size=0, max_size=30), st.text(min_size=0, max_size=30))
def test_a_readings_subject_names_its_device_back(node: str, device: str) -> None:
    subject = data_subject(node, device)
    assert device_of(subject) == device
    assert subject.startswith(node_devices_filter(node)[:-1])
