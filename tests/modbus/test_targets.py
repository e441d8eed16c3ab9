"""Targets are parsed as a user writes them, resolved up front, and refused with one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcptool.modbus.targets import (
    Target,
    TargetError,
    expand_arguments,
    parse_units,
    resolve_targets,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", [Target("127.0.0.1", 502)]),
        ("127.0.0.1:1502", [Target("127.0.0.1", 1502)]),
        ("[::1]:1502", [Target("::1", 1502)]),
        ("::1", [Target("::1", 502)]),
        ("127.0.0.0/30", [Target("127.0.0.1", 502), Target("127.0.0.2", 502)]),
        ("127.0.0.0/30:1502", [Target("127.0.0.1", 1502), Target("127.0.0.2", 1502)]),
        ("127.0.0.9/32", [Target("127.0.0.9", 502)]),
        ("[::1/128]:5020", [Target("::1", 5020)]),
    ],
)
async def test_each_target_form_expands_to_addresses_and_ports(
    text: str, expected: list[Target]
) -> None:
    assert await resolve_targets([text]) == expected


async def test_host_names_resolve_once_and_keep_their_name() -> None:
    (target,) = await resolve_targets(["localhost:1502"])
    assert target.address in ("127.0.0.1", "::1")
    assert (target.port, target.name) == (1502, "localhost")


async def test_duplicates_are_dropped_and_order_is_kept() -> None:
    targets = await resolve_targets(["127.0.0.3", "127.0.0.0/30", "127.0.0.3:502"])
    assert [t.label for t in targets] == ["127.0.0.3:502", "127.0.0.1:502", "127.0.0.2:502"]


async def test_the_default_port_applies_where_none_is_written() -> None:
    assert await resolve_targets(["127.0.0.1"], default_port=5020) == [Target("127.0.0.1", 5020)]


def test_ipv6_labels_are_bracketed() -> None:
    assert Target("::1", 502).label == "[::1]:502"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1:0", "port '0' in '127.0.0.1:0' is not a port: use 1-65535"),
        ("127.0.0.1:70000", "is not a port"),
        ("127.0.0.1:http", "is not a port"),
        ("[::1", "write IPv6 with a port as"),
        ("127.0.0.0/33", "is not a CIDR range"),
        ("10.0.0.0/8", "more than 65536: split it"),
        (":502", "has no host"),
        ("no-such-host.invalid", "cannot resolve host 'no-such-host.invalid'"),
    ],
)
async def test_bad_targets_are_one_line_usage_errors(text: str, message: str) -> None:
    with pytest.raises(TargetError, match=re.escape(message)):
        await resolve_targets([text])


async def test_no_targets_at_all_is_an_error() -> None:
    with pytest.raises(TargetError, match="no targets"):
        await resolve_targets([])


def test_target_files_take_comments_commas_and_several_per_line(tmp_path: Path) -> None:
    listing = tmp_path / "plant.txt"
    listing.write_text("# line 3\n127.0.0.1:1502, 127.0.0.2\n\n127.0.0.0/30  # hall\n")
    assert expand_arguments(["127.0.0.9", f"@{listing}"], [listing]) == [
        "127.0.0.9",
        "127.0.0.1:1502",
        "127.0.0.2",
        "127.0.0.0/30",
        "127.0.0.1:1502",
        "127.0.0.2",
        "127.0.0.0/30",
    ]


def test_a_missing_target_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"cannot read target file .*nope\.txt"):
        expand_arguments([f"@{tmp_path / 'nope.txt'}"])


@pytest.mark.parametrize(
    ("text", "units"),
    [("1", [1]), ("1-3", [1, 2, 3]), ("5,1-2,2", [1, 2, 5]), ("0,255", [0, 255])],
)
def test_unit_lists_and_ranges(text: str, units: list[int]) -> None:
    assert parse_units(text) == units


def test_the_full_unit_sweep_is_247_ids() -> None:
    assert len(parse_units("1-247")) == 247


@pytest.mark.parametrize("text", ["a", "1-", "5-1", "256", "-1", "1,,2"])
def test_bad_unit_lists_are_usage_errors(text: str) -> None:
    with pytest.raises(TargetError, match="unit ids"):
        parse_units(text)
