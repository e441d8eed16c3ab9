"""The gateway's TOML config: parsing, validation with exact paths, template expansion.

pydantic does the field checking (types, ranges, unknown keys) because it reports every
problem at once with its location; we only turn its locations into the paths users read
(``devices[2].points[5].type``) and its messages into short ones. Checks that span
fields (template references, duplicate names, point layout) run afterwards on the
validated models, so they too can name the exact entry.

A device entry may use a template (shared points and settings) and ``count`` to stand
for many identical devices: ``name = "meter-{n}"`` with ``count = 20`` makes
``meter-1`` .. ``meter-20``, each ``unit_step`` units and ``port_step`` ports after the
previous one.
"""

from __future__ import annotations

import importlib.util
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from mcptool.errors import UsageError
from mcptool.gateway.fields import FiniteFloat, Port, Seconds, SettingsModel
from mcptool.gateway.sinks.registry import SINKS, SinkRegistry, SinkType
from mcptool.gateway.sinks.settings import JsonlConfig, MqttConfig, UplinkConfig
from mcptool.modbus.datatypes import ORDERS, TYPES, DataTypeError, normalize_order
from mcptool.modbus.poller import DeviceSpec, shared_connection_problems
from mcptool.modbus.registermap import (
    TABLE_ALIASES,
    ByteOrder,
    DataType,
    Point,
    Table,
    plan_reads,
)
from mcptool.modbus.serial_line import SerialSettings
from mcptool.modbus.targets import parse_target
from mcptool.numbers import config_number
from mcptool.problems import ConfigError, Problem, problems_of

__all__ = [
    "ConfigError",
    "DeviceConfig",
    "GatewayConfig",
    "JsonlConfig",
    "MetricsConfig",
    "MqttConfig",
    "PointConfig",
    "PointInfo",
    "Problem",
    "SpoolConfig",
    "TracingConfig",
    "UplinkConfig",
    "load_config",
    "parse_config",
]


def _table(value: object) -> str:
    key = str(value).strip().lower()
    if key not in TABLE_ALIASES:
        raise PydanticCustomError(
            "unknown_table",
            'unknown table "{value}" (one of: coil, discrete, input, holding)',
            {"value": value},
        )
    return TABLE_ALIASES[key]


def _type(value: object) -> str:
    key = str(value).strip().lower()
    if key not in TYPES:
        raise PydanticCustomError(
            "unknown_type",
            'unknown type "{value}" (one of: {choices})',
            {"value": value, "choices": ", ".join(TYPES)},
        )
    return key


def _order(value: object) -> str:
    try:
        return normalize_order(str(value))
    except DataTypeError:
        raise PydanticCustomError(
            "unknown_order",
            'unknown byte order "{value}" (one of: {choices})',
            {"value": value, "choices": ", ".join(ORDERS)},
        ) from None


TableName = Annotated[str, BeforeValidator(_table)]
TypeName = Annotated[str, BeforeValidator(_type)]
OrderName = Annotated[str, BeforeValidator(_order)]


class PointConfig(SettingsModel):
    name: str = Field(min_length=1)
    table: TableName = "holding"
    address: int = Field(ge=0, le=65535)
    type: TypeName | None = None
    order: OrderName = "ABCD"
    scale: FiniteFloat = 1.0
    offset: FiniteFloat = 0.0
    unit: str = ""
    length: int | None = Field(default=None, ge=1, le=250)
    bit: int | None = Field(default=None, ge=0, le=15)
    decimals: int | None = Field(default=None, ge=0, le=15)
    # for people and agents (the context server lists it); changes nothing in polling
    description: str = ""
    # only a point marked writable, within [min, max], can be written (the context
    # server's write tool); nothing else can be, whatever a client asks
    writable: bool = False
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None


@dataclass(frozen=True, slots=True)
class PointInfo:
    """What the config says about a point beyond its register map: its description and
    whether it may be written, between which bounds (both set when ``writable``, except
    for a bool)."""

    description: str = ""
    writable: bool = False
    min: float | None = None
    max: float | None = None


class DeviceSettings(SettingsModel):
    """Settings a template, ``[defaults]`` or a device may give."""

    port: Port | None = None
    unit: int | None = Field(default=None, ge=0, le=255)
    interval: Seconds | None = None
    timeout: Seconds | None = None
    connect_timeout: Seconds | None = None
    max_gap: int | None = Field(default=None, ge=0, le=124)
    max_registers: int | None = Field(default=None, ge=1, le=125)
    max_bits: int | None = Field(default=None, ge=1, le=2000)
    addressing: Literal[0, 1] | None = None
    # how the host is reached (docs/PROBE.md): RTU frames over TCP for a serial
    # converter; a serial port's line settings when the host is one (/dev/ttyUSB0)
    framing: Literal["tcp", "rtu"] | None = None
    baudrate: int | None = Field(default=None, ge=50, le=4_000_000)
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] | None = None
    backoff_initial: Seconds | None = None
    backoff_max: Seconds | None = None
    retry_bad_after: Seconds | None = None


class TemplateConfig(DeviceSettings):
    points: list[PointConfig] = Field(default_factory=list)


class DeviceConfig(DeviceSettings):
    name: str = Field(min_length=1)
    host: str = Field(min_length=1)
    # for people and the analysis' prompt ("gas boiler, 24 kW"); changes nothing in polling
    description: str = ""
    template: str | None = None
    count: int = Field(default=1, ge=1, le=10000)
    unit_step: int = 0
    port_step: int = 0
    points: list[PointConfig] = Field(default_factory=list)


class SpoolConfig(SettingsModel):
    path: str = "mcptool-spool.db"
    synchronous: Literal["normal", "full"] = "normal"
    commit_interval: Annotated[float, config_number(gt=0, le=10)] = 0.02
    max_readings: int = Field(default=5_000_000, ge=1)
    policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    # readings held in memory while the spool cannot write (disk full); the policy
    # applies past it
    max_pending: int = Field(default=1_000_000, ge=1)
    # seconds a record stays after every sink has it: the history the context server
    # reads (0: deleted at once, as before)
    keep: Annotated[float, config_number(ge=0, le=366 * 86400)] = 0.0


class MetricsConfig(SettingsModel):
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)


def _otlp_endpoint(value: object) -> object:
    """``http(s)://HOST[:PORT][/PATH]``: the collector's base URL (spans go to /v1/traces)."""
    if not isinstance(value, str):
        return value  # pydantic names the type that was expected
    scheme, sep, rest = value.partition("://")
    host = rest.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    if not sep or scheme not in ("http", "https") or not host or " " in value:
        raise ValueError("give http://HOST:PORT (OTLP/HTTP, e.g. http://127.0.0.1:4318)")
    return value


class TracingConfig(SettingsModel):
    """``[tracing]``: OpenTelemetry spans of every poll, spool commit and uplink send."""

    enabled: bool = True  # false: keep the table, trace nothing
    # the OTLP/HTTP collector's base URL; none: the spans go to the process's own tracer
    # provider (`gateway run` makes one from the standard OTEL_EXPORTER_OTLP_* variables)
    endpoint: Annotated[str | None, BeforeValidator(_otlp_endpoint)] = None
    service: str = Field(default="mcptool-gateway", min_length=1)
    # share of polls that start a recorded trace (the rest cost a few microseconds each)
    sample_ratio: Annotated[float, config_number(gt=0, le=1)] = 1.0


class RawConfig(SettingsModel):
    node: str = Field(default="edge", min_length=1, pattern=r"^[^/#+\s]+$")
    spool: SpoolConfig = SpoolConfig()
    metrics: MetricsConfig | None = None
    tracing: TracingConfig | None = None
    defaults: DeviceSettings = DeviceSettings()
    templates: dict[str, TemplateConfig] = Field(default_factory=dict)
    devices: list[DeviceConfig] = Field(min_length=1)
    # the sinks' tables ([mqtt], [jsonl], ...) are validated by their SinkType


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """A validated config: devices expanded to poller specs, sinks and spool settings."""

    node: str
    devices: tuple[DeviceSpec, ...]
    spool: SpoolConfig
    # the settings of each sink configured, by name, in the order of ``sink_types``
    sinks: Mapping[str, Any] = field(default_factory=dict)
    metrics: MetricsConfig | None = None
    tracing: TracingConfig | None = None
    base_dir: Path = Path()
    sink_types: SinkRegistry = SINKS  # the registry the config was read with
    # per device, per point: description and write permission (points not in it: none)
    point_info: Mapping[str, Mapping[str, PointInfo]] = field(default_factory=dict)
    # per device: its description, when the config gives one
    descriptions: Mapping[str, str] = field(default_factory=dict)

    def info(self, device: str, point: str) -> PointInfo:
        """The description and write permission of ``device``'s ``point``."""
        return self.point_info.get(device, {}).get(point, _NO_INFO)

    @property
    def mqtt(self) -> MqttConfig | None:
        return self.sinks.get("mqtt")

    @property
    def uplink(self) -> UplinkConfig | None:
        return self.sinks.get("uplink")

    @property
    def jsonl(self) -> JsonlConfig | None:
        return self.sinks.get("jsonl")

    def enabled_sinks(self) -> list[tuple[SinkType, Any]]:
        """The sinks a run starts: configured and not switched off, in registry order."""
        return [
            (sink, self.sinks[sink.name])
            for sink in self.sink_types
            if sink.name in self.sinks and sink.enabled(self.sinks[sink.name])
        ]

    @property
    def points(self) -> int:
        return sum(len(device.points) for device in self.devices)

    def with_changes(self, **changes: Any) -> GatewayConfig:
        from dataclasses import replace

        return replace(self, **changes)


def load_config(path: str | Path, *, sinks: SinkRegistry = SINKS) -> GatewayConfig:
    """Read and validate a TOML file; raises ``ConfigError`` listing every problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), [Problem("", "file not found")]) from None
    except OSError as exc:
        raise ConfigError(str(path), [Problem("", f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = f"byte 0x{raw[exc.start]:02x} at offset {exc.start}"
        problem = f"not UTF-8 text: {byte} (a config is TOML, UTF-8)"
        raise ConfigError(str(path), [Problem("", problem)]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [Problem("", f"not valid TOML: {exc}")]) from None
    return parse_config(data, source=str(path), base_dir=path.parent, sinks=sinks)


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str = "config",
    base_dir: Path | None = None,
    sinks: SinkRegistry = SINKS,
) -> GatewayConfig:
    """Validate a config given as a mapping (the parsed TOML): the gateway's own tables
    here, each sink's table by its ``SinkType`` in ``sinks``; every problem at once."""
    base_dir = base_dir or Path()
    own = {key: value for key, value in data.items() if key not in sinks}
    problems: list[Problem] = []
    settings: dict[str, Any] = {}
    for sink in sinks:
        if sink.name in data:
            parsed, found = sink.parse(data[sink.name], base_dir)
            problems.extend(found)
            if parsed is not None:
                settings[sink.name] = parsed
    try:
        raw = RawConfig.model_validate(own)
    except ValidationError as exc:
        raise ConfigError(source, problems_of(exc.errors()) + problems) from None
    infos: dict[str, dict[str, PointInfo]] = {}
    descriptions: dict[str, str] = {}
    devices = _expand(raw, problems, infos, descriptions)
    outward = [sink.name for sink in sinks if sink.delivers]
    if not any(name in data for name in outward):
        names = ", ".join(f"[{name}]" for name in outward)
        problems.append(Problem("", f"no destination: add one of {names}"))
    if raw.tracing is not None and raw.tracing.enabled and not _tracing_installed():
        problems.append(
            Problem("tracing", "needs the OpenTelemetry SDK: pip install 'mcptool[tracing]'")
        )
    if problems:
        raise ConfigError(source, problems)
    return GatewayConfig(
        node=raw.node,
        devices=tuple(devices),
        spool=raw.spool,
        sinks=settings,
        metrics=raw.metrics,
        tracing=raw.tracing if raw.tracing is not None and raw.tracing.enabled else None,
        base_dir=base_dir,
        sink_types=sinks,
        point_info=infos,
        descriptions=descriptions,
    )


def _tracing_installed() -> bool:
    """The SDK and its OTLP/HTTP exporter (the ``tracing`` extra) can be imported."""
    try:
        return all(
            importlib.util.find_spec(name) is not None
            for name in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")
        )
    except ModuleNotFoundError:  # a parent package is missing
        return False


_SETTINGS = tuple(DeviceSettings.model_fields)
# settings that reach DeviceSpec through the parsed host, not as they are
_NOT_SPEC = ("port", "unit", "addressing", "framing", "baudrate", "parity", "stopbits")
_DEFAULTS: dict[str, Any] = {
    "port": 502,
    "unit": 1,
    "interval": 1.0,
    "timeout": 1.0,
    "connect_timeout": 3.0,
    "max_gap": 10,
    "max_registers": 125,
    "max_bits": 2000,
    "addressing": 0,
    "framing": "tcp",
    "baudrate": 19200,
    "parity": "E",
    "stopbits": 1,
    "backoff_initial": 1.0,
    "backoff_max": 30.0,
    "retry_bad_after": 300.0,
}


_NO_INFO = PointInfo()


def _expand(
    raw: RawConfig,
    problems: list[Problem],
    infos: dict[str, dict[str, PointInfo]],
    descriptions: dict[str, str],
) -> list[DeviceSpec]:
    templates: dict[str, tuple[TemplateConfig, list[Point | None]]] = {}
    for name, template in raw.templates.items():
        addressing = template.addressing or raw.defaults.addressing or 0
        points = _points(template.points, f"templates.{name}.points", addressing, problems)
        templates[name] = (template, points)
    template_infos = {
        name: _infos(template.points, f"templates.{name}.points", problems)
        for name, template in raw.templates.items()
    }
    specs: list[DeviceSpec] = []
    names: dict[str, str] = {}
    for i, device in enumerate(raw.devices):
        path = f"devices[{i}]"
        template: TemplateConfig | None = None
        template_points: list[Point | None] = []
        if device.template is not None:
            if device.template not in templates:
                known = ", ".join(sorted(templates)) or "none defined"
                problems.append(
                    Problem(f"{path}.template", f'unknown template "{device.template}" ({known})')
                )
                continue
            template, template_points = templates[device.template]
        settings = dict(_DEFAULTS)
        for layer in (raw.defaults, template, device):
            if layer is not None:
                settings.update(
                    {k: getattr(layer, k) for k in _SETTINGS if getattr(layer, k) is not None}
                )
        own = _points(device.points, f"{path}.points", settings["addressing"], problems)
        info = {
            **(template_infos.get(device.template, {}) if device.template else {}),
            **_infos(device.points, f"{path}.points", problems),
        }
        points = [p for p in template_points + own if p is not None]
        if None in own or None in template_points:
            continue
        if not points:
            problems.append(Problem(f"{path}.points", "no points: add points or a template"))
            continue
        seen: set[str] = set()
        for j, point in enumerate(points):
            if point.name in seen:
                where = (
                    f"{path}.points[{j - len(template_points)}]"
                    if j >= len(template_points)
                    else f"{path}.template"
                )
                problems.append(Problem(f"{where}.name", f'duplicate point name "{point.name}"'))
            seen.add(point.name)
        if device.count > 1 and "{n}" not in device.name:
            problems.append(Problem(f"{path}.name", 'with count > 1 the name needs "{n}"'))
            continue
        for n in range(device.count):
            name = device.name.replace("{n}", str(n + 1))
            port = settings["port"] + n * device.port_step
            unit = settings["unit"] + n * device.unit_step
            if name in names:
                problems.append(Problem(f"{path}.name", f'device "{name}" also in {names[name]}'))
                continue
            names[name] = path
            try:
                where = parse_target(
                    device.host,
                    port,
                    settings["framing"],
                    SerialSettings(
                        "-", settings["baudrate"], settings["parity"], settings["stopbits"]
                    ),
                )
            except UsageError as exc:
                problems.append(Problem(f"{path}.host", str(exc)))
                continue
            if where.network is not None:
                problems.append(Problem(f"{path}.host", f"{device.host}: one host, not a range"))
                continue
            if where.serial is not None:
                port = 0  # a serial line: its units share the port's bus
            elif not 1 <= where.port <= 65535 or not 0 <= unit <= 255:
                problems.append(Problem(path, f"{name}: port {port} / unit {unit} out of range"))
                continue
            if "/" in name or "+" in name or "#" in name:
                problems.append(
                    Problem(f"{path}.name", f'"{name}": no "/", "+" or "#" (MQTT topic)')
                )
                continue
            spec = DeviceSpec(
                name=name,
                host=where.host,
                points=tuple(points),
                port=where.port if where.serial is None else 0,
                unit=unit,
                framing=where.framing,
                serial=where.serial,
                **{k: settings[k] for k in _SETTINGS if k not in _NOT_SPEC},
            )
            try:
                spec.plan()
            except ValueError as exc:
                problems.append(Problem(f"{path}.points", str(exc)))
                continue
            specs.append(spec)
            if info:
                infos[name] = info
            if device.description:
                descriptions[name] = device.description
    problems.extend(Problem("devices", line) for line in shared_connection_problems(specs))
    return specs


_WRITABLE_TABLES = (Table.HOLDING.value, Table.COIL.value)


def _infos(configs: list[PointConfig], path: str, problems: list[Problem]) -> dict[str, PointInfo]:
    """Descriptions and write permissions; a writable point needs a table that can be
    written and, unless it is a bool, both bounds (a safety limit the writer enforces)."""
    out: dict[str, PointInfo] = {}
    for j, config in enumerate(configs):
        where = f"{path}[{j}]"
        if config.writable:
            bits = config.table == Table.COIL.value or config.type == "bool"
            if config.table not in _WRITABLE_TABLES:
                problems.append(
                    Problem(
                        f"{where}.writable",
                        f"a point in the {config.table} table cannot be written"
                        " (only holding registers and coils)",
                    )
                )
                continue
            if config.type == "string":
                problems.append(Problem(f"{where}.writable", "a string point cannot be written"))
                continue
            if not bits:
                missing = [k for k in ("min", "max") if getattr(config, k) is None]
                if missing:
                    problems.append(
                        Problem(
                            f"{where}.{missing[0]}",
                            "a writable point needs bounds: add min and max",
                        )
                    )
                    continue
        if config.min is not None and config.max is not None and config.min > config.max:
            problems.append(
                Problem(f"{where}.max", f"should be at least min ({config.min}), got {config.max}")
            )
            continue
        if (config.min is not None or config.max is not None) and not config.writable:
            problems.append(
                Problem(f"{where}.writable", "min and max bound writes: add writable = true")
            )
            continue
        if config.description or config.writable:
            out[config.name] = PointInfo(
                config.description, config.writable, config.min, config.max
            )
    return out


def _points(
    configs: list[PointConfig], path: str, addressing: int, problems: list[Problem]
) -> list[Point | None]:
    out: list[Point | None] = []
    for j, config in enumerate(configs):
        where = f"{path}[{j}]"
        table = Table(config.table)
        type_name = config.type or ("bool" if table.is_bits else "uint16")
        address = config.address - addressing
        if address < 0:
            problems.append(Problem(f"{where}.address", "0 with 1-based addressing (starts at 1)"))
            out.append(None)
            continue
        try:
            point = Point(
                name=config.name,
                table=table,
                address=address,
                type=DataType(type_name),
                order=ByteOrder(config.order),
                scale=config.scale,
                offset=config.offset,
                unit=config.unit,
                length=config.length or 0,
                bit=config.bit,
                decimals=config.decimals,
            )
            plan_reads([point])
        except ValueError as exc:
            problems.append(Problem(where, str(exc).partition(": ")[2] or str(exc)))
            out.append(None)
            continue
        out.append(point)
    return out
