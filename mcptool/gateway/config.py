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

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from mcptool.errors import UsageError
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
from mcptool.numbers import config_number

__all__ = [
    "ConfigError",
    "DeviceConfig",
    "GatewayConfig",
    "JsonlConfig",
    "MetricsConfig",
    "MqttConfig",
    "PointConfig",
    "Problem",
    "SpoolConfig",
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
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, config_number(gt=0, le=86400)]
FiniteFloat = Annotated[float, config_number()]


def _protocol(value: object) -> object:
    """``protocol = 5`` (a TOML integer) means ``"5"``."""
    return "5" if value == 5 and not isinstance(value, bool) else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointConfig(_Model):
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


class DeviceSettings(_Model):
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
    backoff_initial: Seconds | None = None
    backoff_max: Seconds | None = None
    retry_bad_after: Seconds | None = None


class TemplateConfig(DeviceSettings):
    points: list[PointConfig] = Field(default_factory=list)


class DeviceConfig(DeviceSettings):
    name: str = Field(min_length=1)
    host: str = Field(min_length=1)
    template: str | None = None
    count: int = Field(default=1, ge=1, le=10000)
    unit_step: int = 0
    port_step: int = 0
    points: list[PointConfig] = Field(default_factory=list)


class SpoolConfig(_Model):
    path: str = "mcptool-spool.db"
    synchronous: Literal["normal", "full"] = "normal"
    commit_interval: Annotated[float, config_number(gt=0, le=10)] = 0.02
    max_readings: int = Field(default=5_000_000, ge=1)
    policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    # readings held in memory while the spool cannot write (disk full); the policy
    # applies past it
    max_pending: int = Field(default=1_000_000, ge=1)


class MqttConfig(_Model):
    host: str = "127.0.0.1"
    port: Port = 1883
    client_id: str = "mcptool-{node}"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    qos: Literal[0, 1] = 1
    topic: str = "mcptool/{node}/{device}/telemetry"
    # analysis records (spool pseudo-device "<device>/analysis"); {device} is <device>
    analysis_topic: str = "mcptool/{node}/{device}/analysis"
    status_topic: str = "mcptool/{node}/{device}/status"
    gateway_topic: str = "mcptool/{node}/status"
    keepalive: int = Field(default=30, ge=5, le=3600)
    window: int = Field(default=200, ge=1, le=10000)
    publish_timeout: Seconds = 10.0
    # MQTT 5 lets the broker announce its maximum packet size and refuse a message with a
    # reason; "3.1.1" is for brokers that speak nothing newer (docs/GATEWAY.md)
    protocol: Annotated[Literal["5", "3.1.1"], BeforeValidator(_protocol)] = "5"
    # bytes of one PUBLISH packet (topic and headers included); a poll over it is cut by
    # readings. For brokers that do not announce their limit (MQTT 3.1.1, or Mosquitto's
    # message_size_limit, which it does not announce)
    max_packet_size: int | None = Field(default=None, ge=256, le=268_435_455)


class UplinkConfig(_Model):
    url: str = Field(pattern=r"^mcps?://", description="mcp://HOST:PORT or mcps://HOST:PORT")
    node_id: str | None = None  # default: the gateway's node
    key: str | None = Field(default=None, min_length=16)
    key_file: str | None = None
    ca_file: str | None = None
    tls_insecure: bool = False
    window: int = Field(default=64, ge=1, le=4096)
    connect_timeout: Seconds = 10.0
    # at most the hub's max_frame; the floor leaves room for the handshake and ACKs. The
    # bounds are mcptool.frame's MAX_LENGTH_DEFAULT and _LIMIT (a test checks), written
    # out because importing the frame codec would slow down `gateway check`
    max_frame: int = Field(default=16_384, ge=512, le=65_535)


class JsonlConfig(_Model):
    path: str = "-"


class MetricsConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)


class RawConfig(_Model):
    node: str = Field(default="edge", min_length=1, pattern=r"^[^/#+\s]+$")
    spool: SpoolConfig = SpoolConfig()
    mqtt: MqttConfig | None = None
    uplink: UplinkConfig | None = None
    jsonl: JsonlConfig | None = None
    metrics: MetricsConfig | None = None
    defaults: DeviceSettings = DeviceSettings()
    templates: dict[str, TemplateConfig] = Field(default_factory=dict)
    devices: list[DeviceConfig] = Field(min_length=1)
    # validated by mcptool.analysis (docs/ANALYSIS.md), which names its own keys
    analysis: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(UsageError):
    """The config has problems; ``problems`` has one per line, each with its path."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        first = problems[0] if problems else Problem("", "invalid")
        more = f" (and {len(problems) - 1} more; run `mcptool gateway check`)"
        super().__init__(f"{source}: {first}{more if len(problems) > 1 else ''}")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """A validated config: devices expanded to poller specs, sinks and spool settings."""

    node: str
    devices: tuple[DeviceSpec, ...]
    spool: SpoolConfig
    mqtt: MqttConfig | None = None
    uplink: UplinkConfig | None = None
    jsonl: JsonlConfig | None = None
    metrics: MetricsConfig | None = None
    base_dir: Path = Path()
    analysis: Any = None  # mcptool.analysis.AnalysisConfig when [analysis] is given

    @property
    def points(self) -> int:
        return sum(len(device.points) for device in self.devices)

    def with_changes(self, **changes: Any) -> GatewayConfig:
        from dataclasses import replace

        return replace(self, **changes)


def load_config(path: str | Path) -> GatewayConfig:
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
    return parse_config(data, source=str(path), base_dir=path.parent)


def parse_config(
    data: Mapping[str, Any], *, source: str = "config", base_dir: Path | None = None
) -> GatewayConfig:
    """Validate a config given as a mapping (the parsed TOML)."""
    try:
        raw = RawConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_problem(error) for error in exc.errors()]) from None
    problems: list[Problem] = []
    devices = _expand(raw, problems)
    if not (raw.mqtt or raw.uplink or raw.jsonl):
        problems.append(Problem("", "no destination: add [mqtt], [uplink] or [jsonl]"))
    if raw.mqtt is not None:
        for key in ("topic", "analysis_topic", "status_topic", "gateway_topic", "client_id"):
            problem = _template_problem(getattr(raw.mqtt, key))
            if problem:
                problems.append(Problem(f"mqtt.{key}", problem))
    if raw.uplink and not (raw.uplink.key or raw.uplink.key_file):
        problems.append(Problem("uplink.key", "missing: give key or key_file (shared secret)"))
    analysis = None
    if raw.analysis is not None:
        # imported here: the analysis package builds on this one
        from mcptool.analysis.config import AnalysisConfig, AnalysisConfigError

        try:
            analysis = AnalysisConfig.from_dict(raw.analysis, base_dir=base_dir or Path())
        except AnalysisConfigError as exc:
            problems.append(Problem("", str(exc)))
    if problems:
        raise ConfigError(source, problems)
    return GatewayConfig(
        node=raw.node,
        devices=tuple(devices),
        spool=raw.spool,
        mqtt=raw.mqtt,
        uplink=raw.uplink,
        jsonl=raw.jsonl,
        metrics=raw.metrics,
        base_dir=base_dir or Path(),
        analysis=analysis,
    )


def _template_problem(template: str) -> str | None:
    try:
        template.format(node="n", device="d")
    except KeyError as exc:
        return f"unknown placeholder {{{exc.args[0]}}} (use {{node}} and {{device}})"
    except (ValueError, IndexError):
        return 'bad placeholder: write {node} and {device}, and "{{" for a literal "{"'
    return None


def _problem(error: Mapping[str, Any]) -> Problem:
    path = _path(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return Problem(path, "unknown setting (check its spelling)")
    if kind == "missing":
        return Problem(path, "missing (required)")
    message = str(error["msg"])
    for prefix in ("Input should ", "String should ", "List should ", "Value should "):
        if message.startswith(prefix):
            message = "should " + message.removeprefix(prefix)
    secret = str(error["loc"][-1]) in ("key", "password") if error["loc"] else False
    if kind not in ("unknown_type", "unknown_table", "unknown_order") and not secret:
        message = f"{message}, got {error.get('input')!r}"  # never echo a secret
    return Problem(path, message)


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "literal[")):
            continue  # pydantic's names for union members, not part of the user's path
        else:
            out += f".{part}" if out else str(part)
    return out


_SETTINGS = tuple(DeviceSettings.model_fields)
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
    "backoff_initial": 1.0,
    "backoff_max": 30.0,
    "retry_bad_after": 300.0,
}


def _expand(raw: RawConfig, problems: list[Problem]) -> list[DeviceSpec]:
    templates: dict[str, tuple[TemplateConfig, list[Point | None]]] = {}
    for name, template in raw.templates.items():
        addressing = template.addressing or raw.defaults.addressing or 0
        points = _points(template.points, f"templates.{name}.points", addressing, problems)
        templates[name] = (template, points)
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
            if not 1 <= port <= 65535 or not 0 <= unit <= 255:
                problems.append(Problem(path, f"{name}: port {port} / unit {unit} out of range"))
                continue
            if "/" in name or "+" in name or "#" in name:
                problems.append(
                    Problem(f"{path}.name", f'"{name}": no "/", "+" or "#" (MQTT topic)')
                )
                continue
            spec = DeviceSpec(
                name=name,
                host=device.host,
                points=tuple(points),
                port=port,
                unit=unit,
                **{k: settings[k] for k in _SETTINGS if k not in ("port", "unit", "addressing")},
            )
            try:
                spec.plan()
            except ValueError as exc:
                problems.append(Problem(f"{path}.points", str(exc)))
                continue
            specs.append(spec)
    problems.extend(Problem("devices", line) for line in shared_connection_problems(specs))
    return specs


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
