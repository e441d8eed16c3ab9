"""``mcptool gateway check --live``: every point read once against the bundled simulators."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcptool.cli import main
from mcptool.gateway.example_configs import example_config
from simulators.modbus.profile import load_profile
from tests.modbus.simulator_thread import simulator_thread


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out, err


def _lines(out: str) -> dict[str, str]:
    """Each point's row by "device point"."""
    rows = {}
    for line in out.splitlines()[1:-1]:
        device, point, *_ = line.split()
        rows[f"{device} {point}"] = line
    return rows


def test_the_plant_example_reads_plausible_values_from_the_bundled_profiles(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with (
        simulator_thread(load_profile("boiler")) as boiler,
        simulator_thread(load_profile("power_meter")) as meter,
    ):
        text = example_config("plant")
        text = text.replace("port = 5020", f"port = {boiler.address[1]}")
        text = text.replace("port = 5021", f"port = {meter.address[1]}")
        config = tmp_path / "plant.toml"
        config.write_text(text, encoding="utf-8")
        code, out, _ = run_cli(capsys, "gateway", "check", "--config", str(config), "--live")
    rows = _lines(out)
    assert code == 0, out
    assert set(rows) == {
        "boiler temperature", "boiler pressure", "boiler burner_on", "meter voltage",
        "meter energy",
    }  # fmt: skip
    assert all(row.endswith("  ok") for row in rows.values()), out
    voltage = float(rows["meter voltage"].split()[4])
    assert 225.0 <= voltage <= 235.0  # the profile's sine: 230 V +- 2.5
    assert out.splitlines()[-1] == "5 points: 5 ok, 0 not"


def test_a_power_meter_point_configured_abcd_gets_cdab_suggested(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with simulator_thread(load_profile("power_meter"), clock=lambda: 0.0) as meter:
        config = tmp_path / "meter.toml"
        config.write_text(
            f"""
[jsonl]
path = "-"

[[devices]]
name = "meter"
host = "127.0.0.1"
port = {meter.address[1]}

  [[devices.points]]
  name = "voltage"
  table = "holding"
  address = 8
  type = "float32"
  order = "ABCD"
  unit = "V"

  [[devices.points]]
  name = "missing"
  table = "holding"
  address = 500
""",
            encoding="utf-8",
        )
        code, out, _ = run_cli(capsys, "gateway", "check", "--config", str(config), "--live")
    rows = _lines(out)
    assert code == 1
    assert "implausible: " in rows["meter voltage"]
    assert rows["meter voltage"].endswith('try order = "CDAB" (reads 230 V)')
    assert rows["meter missing"].endswith("error: exception 0x02: illegal data address")
    assert out.splitlines()[-1] == "2 points: 0 ok, 2 not"


def test_an_unreachable_device_is_an_error_on_each_of_its_points(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "gone.toml"
    config.write_text(
        '[jsonl]\npath = "-"\n'
        '[[devices]]\nname = "gone"\nhost = "127.0.0.1"\nport = 1\nconnect_timeout = 1\n'
        '  [[devices.points]]\n  name = "a"\n  address = 0\n'
        '  [[devices.points]]\n  name = "b"\n  address = 1\n',
        encoding="utf-8",
    )
    code, out, _ = run_cli(capsys, "gateway", "check", "--config", str(config), "--live")
    rows = _lines(out)
    assert code == 1
    assert all("error: 127.0.0.1:1: refused" in row for row in rows.values())
