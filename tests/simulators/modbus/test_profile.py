"""Profiles: the bundled ones load, and every mistake names the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.modbus import DeviceProfile, Point, ProfileError, bundled_profiles, load_profile
from tests.simulators.modbus.conftest import PROFILES


@pytest.mark.parametrize("name", ["boiler", "power_meter", "digital_io", "gateway"])
def test_bundled_profiles_load_by_path_and_by_name(name: str) -> None:
    by_path = load_profile(PROFILES / f"{name}.toml")
    by_name = load_profile(name)
    assert by_path.name == by_name.name == name
    assert all(unit.points for unit in by_path.all_units())


def test_bundled_profiles_cover_what_the_issue_asks() -> None:
    boiler = load_profile("boiler")
    assert {p.type for p in boiler.points if "temperature" in p.name} == {"float32"}
    meter = load_profile("power_meter")
    counters = [p for p in meter.points if "energy" in p.name]
    assert {p.type for p in counters} >= {"int32", "uint32"}
    assert {p.order for p in counters} == {"CDAB"}
    dio = load_profile("digital_io")
    assert {p.table for p in dio.points} >= {"coil", "discrete"}
    gateway = load_profile("gateway")
    assert [u.id for u in gateway.all_units()] == [1, 2, 10]
    assert gateway.absent_unit == 0x0B


def _write(tmp_path: Path, text: str, name: str = "dev.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[[points]]\ntable = "holding"\naddress = 0\ntype = "flaot32"\n',
            'dev.toml: points[0].type: unknown type "flaot32"',
        ),
        (
            '[[points]]\ntable = "holding"\naddress = 0\norder = "ABDC"\n',
            'dev.toml: points[0].order: unknown byte order "ABDC"',
        ),
        ('[[points]]\ntable = "holdings"\naddress = 0\n', "points[0].table: unknown table"),
        ('[[points]]\ntable = "holding"\n', "dev.toml: points[0].address: missing"),
        ('[[points]]\ntable = "holding"\naddress = 0\nadress = 1\n', "points[0].adress: unknown"),
        ('[[points]]\ntable = "holding"\naddress = 70000\n', "points[0].address: must be"),
        ('[[points]]\ntable = "holding"\naddress = "0"\n', "points[0].address: expected int"),
        ('[[points]]\ntable = "coil"\naddress = 0\ntype = "int16"\n', 'use type "bool"'),
        ('[[points]]\ntable = "input"\naddress = 0\ntype = "string"\n', "points[0].length"),
        (
            '[[points]]\ntable = "holding"\naddress = 0\nvalue = { kind = "sin" }\n',
            'points[0].value.kind: unknown kind "sin"',
        ),
        (
            '[[points]]\ntable = "holding"\naddress = 0\nvalue = { kind = "sine", period = 0 }\n',
            "points[0].value.period: must be > 0",
        ),
        (
            '[[points]]\ntable = "holding"\naddress = 0\ntype = "float32"\n'
            '[[points]]\ntable = "holding"\naddress = 1\n',
            "overlap",
        ),
        ('unit = 300\n[[points]]\ntable = "holding"\naddress = 0\n', "unit: must be 0..255"),
        ('absent_unit = "never"\n', "absent_unit:"),
        ("colour = 1\n", "dev.toml: colour: unknown field"),
        ("[[units]]\nid = 1\nprofile = 'missing.toml'\n", "missing.toml: cannot read profile"),
        ("[identity]\nvendor = 'x'\n", "identity.vendor: unknown field"),
        ("points = [\n", "dev.toml: not valid TOML"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile(_write(tmp_path, toml))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_bundled_profile_is_listed_and_loads() -> None:
    assert bundled_profiles() == tuple(sorted(p.stem for p in PROFILES.glob("*.toml")))
    assert {"boiler", "boiler_drift", "gateway"} <= set(bundled_profiles())
    for name in bundled_profiles():
        assert load_profile(name).all_units()


def test_a_file_in_the_current_folder_wins_over_a_bundled_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, 'name = "mine"\n', "boiler.toml")
    monkeypatch.chdir(tmp_path)
    assert load_profile("boiler.toml").name == "mine"
    assert load_profile("boiler").name == "boiler"  # no file "boiler" here: the bundled one


def test_a_unit_may_take_a_bundled_profile_by_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "[[units]]\nid = 3\nprofile = 'power_meter'\n")
    unit = load_profile(path).all_units()[0]
    assert (unit.id, [p.name for p in unit.points]) == (
        3,
        [p.name for p in load_profile("power_meter").points],
    )


def test_a_path_is_never_looked_up_among_the_bundled_profiles(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(tmp_path / "boiler.toml")


def test_a_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "Kessel Süd"\n'.encode("latin-1"))
    with pytest.raises(ProfileError, match=r"latin1.toml: not UTF-8 text \(byte 16\)"):
        load_profile(path)


def test_a_missing_file_lists_the_bundled_profiles(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"cannot read profile.*bundled: boiler"):
        load_profile(tmp_path / "nope.toml")


def test_repeat_lays_points_out_one_after_another(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[[points]]\nname = "t"\ntable = "input"\naddress = 10\ntype = "float32"\nrepeat = 3\n',
    )
    points = load_profile(path).points
    assert [(p.name, p.address) for p in points] == [("t_0", 10), ("t_1", 12), ("t_2", 14)]


def test_profiles_build_in_code_with_the_same_checks() -> None:
    with pytest.raises(ProfileError, match="type: unknown type"):
        Point("holding", 0, "flaot32")
    profile = DeviceProfile(points=[Point("hr", 0, "float64", order="cdab")])
    assert profile.points[0].table == "holding" and profile.points[0].order == "CDAB"


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ({"type": "float32", "value": "hot"}, "value: 'hot' does not fit a float32 point"),
        ({"type": "uint16", "value": [1, 2, "x"]}, "value: 'x' does not fit a uint16 point"),
        ({"type": "string", "length": 1, "value": "abc"}, "does not fit a string point"),
    ],
)
def test_values_the_type_cannot_hold_are_refused_when_loading(
    point: dict[str, object], message: str
) -> None:
    with pytest.raises(ProfileError, match=message):
        Point("holding", 0, **point)  # type: ignore[arg-type]
