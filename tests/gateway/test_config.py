"""Gateway config: every problem is reported at once with the exact path of the entry,
templates and ``count`` expand to many devices, addressing and defaults apply."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from mcptool.gateway.config import (
    ConfigError,
    DeviceConfig,
    MqttConfig,
    PointConfig,
    SpoolConfig,
    UplinkConfig,
    load_config,
    parse_config,
)
from mcptool.modbus.registermap import ByteOrder, DataType, Table


def base(**extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "node": "edge",
        "jsonl": {"path": "-"},
        "devices": [
            {"name": "a", "host": "127.0.0.1", "points": [{"name": "p", "address": 0}]},
        ],
    }
    config.update(extra)
    return config


def problems(config: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(config)
    return [str(p) for p in info.value.problems]


def test_a_misspelt_type_is_reported_with_its_exact_path() -> None:
    config = base()
    config["devices"] = [config["devices"][0]] * 2 + [
        {
            "name": "c",
            "host": "h",
            "points": [{"name": f"p{i}", "address": i} for i in range(5)]
            + [{"name": "x", "address": 9, "type": "flaot32"}],
        }
    ]
    found = problems(config)
    assert any(p.startswith('devices[2].points[5].type: unknown type "flaot32"') for p in found)


def test_all_problems_are_reported_at_once() -> None:
    config = base(metrics={"port": 70000})
    config["devices"][0]["intervall"] = 1
    config["devices"][0]["points"].append({"name": "q", "address": 1, "table": "holdings"})
    config["devices"][0]["points"].append({"address": 2, "order": "ADCB"})
    found = problems(config)
    assert "devices[0].intervall: unknown setting (check its spelling)" in found
    assert any(p.startswith('devices[0].points[1].table: unknown table "holdings"') for p in found)
    assert "devices[0].points[2].name: missing (required)" in found
    assert any(p.startswith('devices[0].points[2].order: unknown byte order "ADCB"') for p in found)
    assert any(p.startswith("metrics.port: should be less than or equal to 65535") for p in found)


def test_cross_field_problems_name_their_entry() -> None:
    config = base()
    config["devices"].append({"name": "a", "host": "h", "template": "meter"})
    config["devices"].append(
        {"name": "b", "host": "h", "points": [{"name": "s", "address": 0, "type": "string"}]}
    )
    config["devices"].append(
        {
            "name": "c",
            "host": "h",
            "points": [{"name": "p", "address": 0}, {"name": "p", "address": 1}],
        }
    )
    found = problems(config)
    assert any(p.startswith('devices[1].template: unknown template "meter"') for p in found)
    assert any(p.startswith("devices[2].points[0]: a string needs `length`") for p in found)
    assert 'devices[3].points[1].name: duplicate point name "p"' in found


def test_a_config_without_a_destination_is_refused() -> None:
    config = base()
    del config["jsonl"]
    assert problems(config) == ["no destination: add one of [mqtt], [jsonl], [uplink]"]


def test_templates_and_count_make_many_devices() -> None:
    config = base(
        defaults={"interval": 2.0},
        templates={
            "meter": {
                "timeout": 0.5,
                "points": [
                    {
                        "name": "v",
                        "table": "input",
                        "address": 0,
                        "type": "float32",
                        "order": "CDAB",
                    }
                ],
            }
        },
    )
    config["devices"] = [
        {
            "name": "m-{n}",
            "host": "10.0.0.1",
            "template": "meter",
            "count": 3,
            "unit": 5,
            "unit_step": 1,
            "port": 1502,
            "port_step": 10,
            "points": [{"name": "extra", "address": 100}],
        }
    ]
    devices = parse_config(config).devices
    assert [(d.name, d.unit, d.port) for d in devices] == [
        ("m-1", 5, 1502),
        ("m-2", 6, 1512),
        ("m-3", 7, 1522),
    ]
    device = devices[0]
    assert (device.interval, device.timeout) == (2.0, 0.5)
    assert [p.name for p in device.points] == ["v", "extra"]
    v = device.points[0]
    assert (v.table, v.type, v.order) == (Table.INPUT, DataType.FLOAT32, ByteOrder.CDAB)


def test_one_based_addressing_shifts_addresses_and_refuses_zero() -> None:
    config = base()
    config["devices"][0]["addressing"] = 1
    config["devices"][0]["points"] = [{"name": "p", "address": 1}, {"name": "q", "address": 40}]
    assert [p.address for p in parse_config(config).devices[0].points] == [0, 39]
    config["devices"][0]["points"][0]["address"] = 0
    assert problems(config) == [
        "devices[0].points[0].address: 0 with 1-based addressing (starts at 1)"
    ]


def test_bit_tables_default_to_bool_and_registers_to_uint16() -> None:
    config = base()
    config["devices"][0]["points"] = [
        {"name": "c", "table": "coils", "address": 0},
        {"name": "r", "table": "holding", "address": 0},
    ]
    points = parse_config(config).devices[0].points
    assert [(p.table, p.type) for p in points] == [
        (Table.COIL, DataType.BOOL),
        (Table.HOLDING, DataType.UINT16),
    ]


def test_load_config_reports_bad_toml_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("node = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_topic_templates_accept_only_node_and_device() -> None:
    config = base(mqtt={"topic": "plant/{nod}/{device}"})
    assert problems(config) == ["mqtt.topic: unknown placeholder {nod} (use {node} and {device})"]


def test_the_analysis_topic_template_is_checked_like_the_telemetry_topic() -> None:
    config = base(mqtt={"analysis_topic": "plant/{node}/{dev}/analysis"})
    assert problems(config) == [
        "mqtt.analysis_topic: unknown placeholder {dev} (use {node} and {device})"
    ]


def test_a_bad_secret_is_never_echoed() -> None:
    config = base(uplink={"url": "mcp://127.0.0.1:7878", "key": "short-secret"})
    [problem] = problems(config)
    assert problem.startswith("uplink.key: should have at least 16 characters")
    assert "short-secret" not in problem


def test_the_gateway_alone_knows_only_the_sinks_of_its_registry() -> None:
    """[analysis] is a sink the composition layer adds (mcptool.edge): the gateway's own
    registry does not have it, so its config names the table as unknown."""
    assert problems(base(analysis={"model": "llama3.2"})) == [
        "analysis: unknown setting (check its spelling)"
    ]


def test_mqtt_speaks_version_5_unless_told_3_1_1() -> None:
    assert parse_config(base(mqtt={})).mqtt.protocol == "5"  # type: ignore[union-attr]
    assert parse_config(base(mqtt={"protocol": 5})).mqtt.protocol == "5"  # type: ignore[union-attr]
    assert parse_config(base(mqtt={"protocol": "3.1.1"})).mqtt.protocol == "3.1.1"  # type: ignore[union-attr]
    assert problems(base(mqtt={"protocol": "4"})) == [
        "mqtt.protocol: should be '5' or '3.1.1', got '4'"
    ]
    assert problems(base(mqtt={"max_packet_size": 100})) == [
        "mqtt.max_packet_size: should be greater than or equal to 256, got 100"
    ]


@pytest.mark.parametrize(
    ("where", "key", "value", "problem"),
    [
        ("point", "scale", float("nan"), "devices[0].points[0].scale: should be a finite number"),
        (
            "point",
            "offset",
            float("-inf"),
            "devices[0].points[0].offset: should be a finite number",
        ),
        (
            "device",
            "interval",
            float("nan"),
            "devices[0].interval: should be a number above 0 and at most 86400",
        ),
        (
            "device",
            "timeout",
            float("inf"),
            "devices[0].timeout: should be a number above 0 and at most 86400",
        ),
        (
            "spool",
            "commit_interval",
            float("nan"),
            "spool.commit_interval: should be a number above 0 and at most 10",
        ),
    ],
)
def test_nan_and_infinities_are_refused_with_their_path_and_range(
    where: str, key: str, value: float, problem: str
) -> None:
    config = base()
    if where == "point":
        config["devices"][0]["points"][0][key] = value
    elif where == "device":
        config["devices"][0][key] = value
    else:
        config["spool"] = {key: value}
    assert problems(config) == [f"{problem}, got {value!r}"]


def test_scale_nan_in_a_toml_file_fails_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[jsonl]\npath = "-"\n[[devices]]\nname = "a"\nhost = "127.0.0.1"\n'
        'points = [{name = "p", address = 0, scale = nan}]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(p) for p in info.value.problems] == [
        "devices[0].points[0].scale: should be a finite number, got nan"
    ]


def test_devices_sharing_a_connection_must_agree_on_its_connect_timeout() -> None:
    # Units behind one host:port share one connection: its connect timeout cannot be
    # per unit, and is refused rather than silently taken from the first unit.
    config = base(defaults={"connect_timeout": 3.0})
    config["devices"].append(
        {
            "name": "b",
            "host": "127.0.0.1",
            "unit": 2,
            "connect_timeout": 1.0,
            "points": [{"name": "p", "address": 0}],
        }
    )
    assert problems(config) == [
        "devices: connect_timeout differs between devices that share the connection to "
        "127.0.0.1:502 (a=3.0, b=1.0): give them one value"
    ]
    config["devices"][1]["timeout"] = config["devices"][1].pop("connect_timeout")
    parse_config(config)  # a per-read timeout may differ per unit


def is_float(annotation: Any) -> bool:
    """``float``, also inside ``Annotated[...]`` and ``... | None``."""
    if annotation is float:
        return True
    if get_origin(annotation) is Annotated:
        return is_float(get_args(annotation)[0])
    return any(is_float(arg) for arg in get_args(annotation) if arg is not type(None))


def float_fields(model: type[BaseModel]) -> list[str]:
    return [name for name, field in model.model_fields.items() if is_float(field.annotation)]


def with_value(section: str, key: str, value: float) -> tuple[dict[str, Any], str]:
    """``base()`` with ``value`` at ``key`` of ``section``, and that key's path."""
    config = base(uplink={"url": "mcp://127.0.0.1:7878", "key": "k" * 16}, mqtt={})
    if section == "point":
        config["devices"][0]["points"][0][key] = value
        return config, f"devices[0].points[0].{key}"
    if section == "device":
        config["devices"][0][key] = value
        return config, f"devices[0].{key}"
    config.setdefault(section, {})[key] = value
    return config, f"{section}.{key}"


SECTIONS = {
    "point": PointConfig,
    "device": DeviceConfig,
    "spool": SpoolConfig,
    "mqtt": MqttConfig,
    "uplink": UplinkConfig,
}
EVERY_FLOAT = [(section, key) for section, model in SECTIONS.items() for key in float_fields(model)]


def test_the_walk_finds_the_float_keys() -> None:
    assert {("point", "scale"), ("device", "interval"), ("mqtt", "publish_timeout")} <= set(
        EVERY_FLOAT
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize(("section", "key"), EVERY_FLOAT)
def test_every_float_key_of_every_section_refuses_non_finite_numbers(
    section: str, key: str, value: float
) -> None:
    config, path = with_value(section, key, value)
    (problem,) = problems(config)
    assert problem.startswith(f"{path}: should be ") and problem.endswith(f", got {value!r}")
    assert "finite number" in problem or " from " in problem or " above " in problem


def test_tracing_is_off_without_its_table_and_checked_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert parse_config(base()).tracing is None
    assert parse_config(base(tracing={"enabled": False})).tracing is None
    tracing = parse_config(base(tracing={"endpoint": "http://127.0.0.1:4318"})).tracing
    assert tracing is not None
    assert (tracing.endpoint, tracing.service, tracing.sample_ratio) == (
        "http://127.0.0.1:4318", "mcptool-gateway", 1.0,
    )  # fmt: skip
    found = problems(base(tracing={"endpoint": "127.0.0.1:4318", "sample_ratio": 0, "sampel": 1}))
    assert found == [
        "tracing.endpoint: give http://HOST:PORT (OTLP/HTTP, e.g. http://127.0.0.1:4318),"
        " got '127.0.0.1:4318'",
        "tracing.sample_ratio: should be a number above 0 and at most 1, got 0",
        "tracing.sampel: unknown setting (check its spelling)",
    ]
    # without the SDK, one line says what to install (and `gateway check` says it first)
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("opentelemetry") else find_spec(name, *a),
    )
    assert problems(base(tracing={})) == [
        "tracing: needs the OpenTelemetry SDK: pip install 'mcptool[tracing]'"
    ]
