"""Device profiles: what a simulated Modbus device holds, from TOML or built in code.

A profile describes one listener: its unit ids, their points (table, address, data type,
byte order, value generator), device identification (0x2B/0x0E) and report-server-id
(0x11) answers, and how it treats unit ids it does not have (gateway style). The TOML
layout is documented in docs/SIMULATORS.md; every mistake in a file is reported as one
line naming the file and the field, e.g. ``boiler.toml: points[3].type: unknown type``.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from mcptool.errors import UsageError
from mcptool.modbus.datatypes import DataTypeError, codec, normalize_order, normalize_type
from simulators.modbus.values import (
    Generator,
    Scalar,
    Sequence_,
    ValueSpecError,
    make_generator,
)

TABLES = ("coil", "discrete", "holding", "input")
_TABLE_ALIASES = {
    **{t: t for t in TABLES},
    "coils": "coil",
    "co": "coil",
    "discrete_input": "discrete",
    "discrete_inputs": "discrete",
    "di": "discrete",
    "holding_register": "holding",
    "holding_registers": "holding",
    "hr": "holding",
    "input_register": "input",
    "input_registers": "input",
    "ir": "input",
}
BIT_TABLES = ("coil", "discrete")
# Package data (see simulators/modbus/profiles/__init__.py): read through importlib.resources,
# never a path computed from __file__, so `--profile boiler` works from a wheel as well.
BUNDLED_PACKAGE = "simulators.modbus.profiles"


class ProfileError(UsageError):
    """A device profile that cannot be used; the message names the file and the field."""


@dataclass
class Point:
    """One value on the device: ``count`` registers (or one bit) at ``table``/``address``.

    ``value`` is a constant, a list (a scripted sequence, one per second) or a
    :class:`~simulators.modbus.values.Generator`; the registers hold
    ``(value - offset) / scale`` encoded as ``type`` in byte order ``order``.
    """

    table: str
    address: int
    type: str = ""
    value: Scalar | list[Scalar] | Mapping[str, Any] | Generator = 0
    name: str = ""
    order: str = "ABCD"
    length: int | None = None  # strings: registers
    scale: float = 1.0
    offset: float = 0.0
    writable: bool = True

    def __post_init__(self) -> None:
        table = _TABLE_ALIASES.get(str(self.table).lower())
        if table is None:
            raise ProfileError(f'table: unknown table "{self.table}" (one of: {", ".join(TABLES)})')
        self.table = table
        if not self.type:
            self.type = "bool" if table in BIT_TABLES else "uint16"
        try:
            self.type = normalize_type(self.type)
            self.order = normalize_order(self.order)
        except DataTypeError as exc:
            field_name = "type" if "type" in str(exc) else "order"
            raise ProfileError(f"{field_name}: {exc}") from None
        if table in BIT_TABLES and self.type != "bool":
            raise ProfileError(f'type: a {table} holds one bit: use type "bool", not {self.type}')
        if self.type == "string" and (not isinstance(self.length, int) or self.length < 1):
            raise ProfileError("length: a string point needs length = registers (>= 1)")
        if not isinstance(self.address, int) or not 0 <= self.address <= 0xFFFF:
            raise ProfileError(f"address: must be 0..65535, got {self.address!r}")
        if self.address + self.count > 0x10000:
            raise ProfileError(f"address: {self.count} registers from {self.address} pass 65535")
        if self.scale == 0:
            raise ProfileError("scale: must not be 0")
        if not isinstance(self.value, Generator):
            try:
                self.value = make_generator(self.value, "value")  # type: ignore[arg-type]
            except ValueSpecError as exc:
                raise ProfileError(str(exc)) from None
        self._check_values()
        if not self.name:
            self.name = f"{self.table}{self.address}"

    def _check_values(self) -> None:
        """Refuse values the point's type cannot hold now, not on the first read."""
        gen = self.generator
        samples = list(gen.values) if isinstance(gen, Sequence_) else [gen(0.0)]
        for sample in samples:
            if self.type in ("bool", "string") or self.table in BIT_TABLES:
                ok = self.type != "string" or len(str(sample).encode()) <= 2 * (self.length or 0)
            else:
                ok = isinstance(sample, int | float) and not isinstance(sample, bool | str)
            if not ok:
                raise ProfileError(f"value: {sample!r} does not fit a {self.type} point")

    @property
    def generator(self) -> Generator:
        assert isinstance(self.value, Generator)
        return self.value

    @property
    def count(self) -> int:
        """Registers (or bits) the point occupies."""
        if self.table in BIT_TABLES:
            return 1
        return codec(self.type, self.order, self.length).count


@dataclass
class Identity:
    """Device identification objects (function 0x2B / MEI 0x0E).

    Basic objects 0-2 are mandatory; regular objects 3-6 are sent when set; ``extended``
    holds private objects 0x80-0xFF.
    """

    vendor_name: str = "mcptool"
    product_code: str = "SIM-1"
    revision: str = "1.0"
    vendor_url: str = ""
    product_name: str = ""
    model_name: str = ""
    user_application_name: str = ""
    extended: dict[int, str] = field(default_factory=dict)

    def objects(self) -> dict[int, bytes]:
        regular = [
            self.vendor_url,
            self.product_name,
            self.model_name,
            self.user_application_name,
        ]
        objs = {
            0: self.vendor_name.encode(),
            1: self.product_code.encode(),
            2: self.revision.encode(),
        }
        objs.update({3 + i: v.encode() for i, v in enumerate(regular) if v})
        objs.update({k: v.encode() for k, v in sorted(self.extended.items())})
        return objs


@dataclass
class ServerId:
    """The answer to report server id (0x11): id bytes, run indicator, additional data."""

    id: bytes = b"\x01"
    running: bool = True
    additional: bytes = b"mcptool simulator"


@dataclass
class UnitProfile:
    """One unit id: its points, identification and report-server-id answer."""

    id: int
    points: list[Point] = field(default_factory=list)
    identity: Identity | None = None
    server_id: ServerId | None = None
    # "error": reading an address no point covers answers exception 0x02 (like most
    # devices); "zero": every address reads, unmapped ones as 0 (a big flat memory).
    unmapped: str = "error"


@dataclass
class DeviceProfile:
    """One simulated device (one listener): a single unit, or several behind a gateway.

    Built in code with ``DeviceProfile(name=..., points=[Point(...)], unit=1)``, or for a
    gateway with ``units=[UnitProfile(...), ...]``. ``answer_all_units`` makes the first
    unit answer for every unit id; otherwise an absent unit gets exception
    ``absent_unit`` (0x0B gateway target failed to respond, 0x0A path unavailable) or no
    answer at all when ``absent_unit`` is None.
    """

    name: str = "device"
    points: list[Point] = field(default_factory=list)
    unit: int = 1
    identity: Identity | None = field(default_factory=Identity)
    server_id: ServerId | None = field(default_factory=ServerId)
    unmapped: str = "error"
    units: list[UnitProfile] = field(default_factory=list)
    answer_all_units: bool = False
    absent_unit: int | None = 0x0B

    def __post_init__(self) -> None:
        if self.unmapped not in ("error", "zero"):
            raise ProfileError(f'unmapped: must be "error" or "zero", got {self.unmapped!r}')
        if self.absent_unit is not None and not 1 <= self.absent_unit <= 255:
            raise ProfileError(f"absent_unit: exception code 1..255, got {self.absent_unit!r}")
        for unit in self.all_units():
            if not 0 <= unit.id <= 255:
                raise ProfileError(f"unit: must be 0..255, got {unit.id!r}")
            _check_overlaps(unit.points, f"units[{unit.id}]" if self.units else "points")
        ids = [u.id for u in self.all_units()]
        if len(ids) != len(set(ids)):
            raise ProfileError(f"units: unit ids repeat: {ids}")

    def all_units(self) -> list[UnitProfile]:
        """The units this device answers for (``units`` if given, else the top-level one)."""
        if self.units:
            return [
                UnitProfile(
                    u.id,
                    u.points,
                    u.identity or self.identity,
                    u.server_id or self.server_id,
                    u.unmapped,
                )
                for u in self.units
            ]
        return [UnitProfile(self.unit, self.points, self.identity, self.server_id, self.unmapped)]


def _check_overlaps(points: list[Point], where: str) -> None:
    spans: dict[str, list[tuple[int, int, str]]] = {}
    for p in points:
        spans.setdefault(p.table, []).append((p.address, p.address + p.count, p.name))
    for table, items in spans.items():
        items.sort()
        for (a0, a1, n0), (b0, _b1, n1) in itertools.pairwise(items):
            if b0 < a1:
                raise ProfileError(
                    f"{where}: {table} points {n0!r} ({a0}..{a1 - 1}) and {n1!r} (from {b0}) "
                    "overlap"
                )


# -- TOML --------------------------------------------------------------------------------


class _Fields:
    """Reads one TOML table, checking types and refusing unknown keys (typos)."""

    def __init__(self, data: Any, where: str, known: tuple[str, ...]) -> None:
        if not isinstance(data, Mapping):
            raise ProfileError(f"{where}: expected a table, got {data!r}")
        self.data, self.where = data, where
        for key in data:
            if key not in known:
                raise ProfileError(f"{self.at(key)}: unknown field (known: {', '.join(known)})")

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if key not in self.data:
            return default
        val = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(val, bool) and bool not in kinds) or not isinstance(val, kinds):
            names = " or ".join(k.__name__.replace("str", "string") for k in kinds)
            raise ProfileError(f"{self.at(key)}: expected {names}, got {val!r}")
        return val


_POINT_KEYS = (
    "name",
    "table",
    "address",
    "type",
    "order",
    "length",
    "value",
    "scale",
    "offset",
    "writable",
    "repeat",
)
_IDENTITY_KEYS = (
    "vendor_name",
    "product_code",
    "revision",
    "vendor_url",
    "product_name",
    "model_name",
    "user_application_name",
    "extended",
)
_UNIT_KEYS = ("id", "profile", "points", "identity", "server_id", "unmapped")
_DEVICE_KEYS = (
    "name",
    "unit",
    "points",
    "identity",
    "server_id",
    "unmapped",
    "units",
    "answer_all_units",
    "absent_unit",
    "description",
)


def _points(items: Any, where: str) -> list[Point]:
    if not isinstance(items, list):
        raise ProfileError(f"{where}: expected a list of tables ([[points]])")
    points: list[Point] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        f = _Fields(item, at, _POINT_KEYS)
        if "table" not in item or "address" not in item:
            missing = "table" if "table" not in item else "address"
            raise ProfileError(f"{at}.{missing}: missing")
        repeat = f.get("repeat", int, 1)
        if repeat < 1:
            raise ProfileError(f"{at}.repeat: must be >= 1, got {repeat}")
        base_name = f.get("name", str, "")
        address = f.get("address", int)
        for n in range(repeat):
            try:
                point = Point(
                    table=f.get("table", str),
                    address=address,
                    type=f.get("type", str, ""),
                    value=f.get("value", (bool, int, float, str, list, dict), 0),
                    name=(f"{base_name}_{n}" if repeat > 1 and base_name else base_name),
                    order=f.get("order", str, "ABCD"),
                    length=f.get("length", int),
                    scale=f.get("scale", (int, float), 1.0),
                    offset=f.get("offset", (int, float), 0.0),
                    writable=f.get("writable", bool, True),
                )
            except ProfileError as exc:
                raise ProfileError(f"{at}.{exc}") from None
            points.append(point)
            address += point.count
    return points


def _identity(data: Any, where: str) -> Identity:
    f = _Fields(data, where, _IDENTITY_KEYS)
    extended: dict[int, str] = {}
    for key, val in f.get("extended", dict, {}).items():
        try:
            obj = int(key, 0)
        except ValueError:
            obj = -1
        if not 0x80 <= obj <= 0xFF or not isinstance(val, str):
            raise ProfileError(
                f'{where}.extended."{key}": object ids 0x80..0xFF with string values'
            )
        extended[obj] = val
    kwargs = {k: f.get(k, str) for k in _IDENTITY_KEYS[:-1] if k in data}
    return Identity(**kwargs, extended=extended)


def _server_id(data: Any, where: str) -> ServerId:
    f = _Fields(data, where, ("id", "running", "additional"))
    raw_id = f.get("id", (int, str), 1)
    if isinstance(raw_id, int):
        if not 0 <= raw_id <= 255:
            raise ProfileError(f"{where}.id: a byte 0..255 or a string, got {raw_id}")
        id_bytes = bytes([raw_id])
    else:
        id_bytes = raw_id.encode()
    return ServerId(id_bytes, f.get("running", bool, True), f.get("additional", str, "").encode())


def parse_profile(
    data: Mapping[str, Any], source: str = "profile", base: Path | Traversable | None = None
) -> DeviceProfile:
    """Build a :class:`DeviceProfile` from parsed TOML; errors start with ``source:``.

    ``base`` is where ``units[].profile`` references are looked up (default: the current
    folder); a name that is not there is taken as a bundled profile.
    """
    try:
        return _parse(data, base or Path.cwd(), source)
    except ProfileError as exc:
        raise ProfileError(f"{source}: {exc}") from None


def _parse(data: Mapping[str, Any], base: Path | Traversable, source: str) -> DeviceProfile:
    f = _Fields(data, "", _DEVICE_KEYS)
    identity = _identity(data["identity"], "identity") if "identity" in data else Identity()
    server_id = _server_id(data["server_id"], "server_id") if "server_id" in data else ServerId()
    absent = f.get("absent_unit", (int, str), 0x0B)
    if isinstance(absent, str):
        if absent != "silence":
            raise ProfileError(
                f'absent_unit: an exception code (0x0A, 0x0B) or "silence", got "{absent}"'
            )
        absent = None
    units: list[UnitProfile] = []
    for i, item in enumerate(f.get("units", list, [])):
        at = f"units[{i}]"
        u = _Fields(item, at, _UNIT_KEYS)
        if "id" not in item:
            raise ProfileError(f"{at}.id: missing")
        unit_id = u.get("id", int)
        if "profile" in item:
            found = resolve_profile(u.get("profile", str), base)
            try:
                included = _load(str(found), found)
            except ProfileError as exc:
                raise ProfileError(f"{at}.profile: {exc}") from None
            first = included.all_units()[0]
            points, ident, sid = first.points, first.identity, first.server_id
            unmapped = first.unmapped
        else:
            points, ident, sid, unmapped = [], None, None, "error"
        if "points" in item:
            points = _points(item["points"], f"{at}.points")
        if "identity" in item:
            ident = _identity(item["identity"], f"{at}.identity")
        if "server_id" in item:
            sid = _server_id(item["server_id"], f"{at}.server_id")
        unmapped = u.get("unmapped", str, unmapped)
        if unmapped not in ("error", "zero"):
            raise ProfileError(f'{at}.unmapped: must be "error" or "zero", got {unmapped!r}')
        units.append(UnitProfile(unit_id, points, ident, sid, unmapped))
    return DeviceProfile(
        name=f.get("name", str, Path(source).stem),
        points=_points(data.get("points", []), "points"),
        unit=f.get("unit", int, 1),
        identity=identity,
        server_id=server_id,
        unmapped=f.get("unmapped", str, "error"),
        units=units,
        answer_all_units=f.get("answer_all_units", bool, False),
        absent_unit=absent,
    )


def bundled_profiles() -> tuple[str, ...]:
    """The names of the profiles shipped with mcptool, e.g. ``("boiler", ...)``."""
    entries = resources.files(BUNDLED_PACKAGE).iterdir()
    return tuple(sorted(e.name.removesuffix(".toml") for e in entries if e.name.endswith(".toml")))


def resolve_profile(path: str | Path, base: Path | Traversable | None = None) -> Traversable:
    """The file a profile reference names.

    A path that exists (relative to ``base``, default the current folder) wins; otherwise a
    bare name such as ``boiler`` or ``boiler.toml`` is a bundled profile. A reference that is
    neither comes back as the path, so reading it reports the missing file.
    """
    given = Path(path) if base is None else base / str(path)
    # exists(), not is_file(), for a real path: a folder named like a profile is reported.
    try:
        if given.is_file() or (isinstance(given, Path) and given.exists()):
            return given
    except OSError:  # a name too long for the file system: reading it says so
        return given
    name = str(path)
    if name and Path(name).name == name:  # a bare name, never a path into the package
        entry = resources.files(BUNDLED_PACKAGE) / f"{name.removesuffix('.toml')}.toml"
        if entry.is_file():
            return entry
    return given


def load_profile(path: str | Path) -> DeviceProfile:
    """Load a TOML profile (a path, or a bundled name such as ``boiler``)."""
    return _load(path, resolve_profile(path))


def _load(shown: str | Path, source: Traversable) -> DeviceProfile:
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        hint = f" (bundled: {', '.join(bundled_profiles())})"
        raise ProfileError(f"{shown}: cannot read profile: {exc.strerror or exc}{hint}") from None
    except UnicodeDecodeError as exc:
        message = f"{shown}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        raise ProfileError(message) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source.name}: not valid TOML: {exc}") from None
    # Includes (units[].profile) resolve beside the file: its folder, or the bundled package.
    base = source.parent if isinstance(source, Path) else resources.files(BUNDLED_PACKAGE)
    return parse_profile(data, source.name, base)
