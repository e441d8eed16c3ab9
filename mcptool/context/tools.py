"""The tools the context server offers, as plain async methods with typed results.

The MCP server (``server.py``) and ``mcptool ask`` (``agent.py``) both register these,
so an agent gets the same answers whichever way it comes. A user error (an unknown
device, a point that is not writable, a value out of bounds, a spool not there) raises
``ToolProblem`` with one line naming the thing and the fix; the SDK turns it into a
tool error (``isError``), which the agent can read and correct.
"""

from __future__ import annotations

import ipaddress
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field, WithJsonSchema

from mcptool.context.history import MAX_FINDINGS, MAX_SAMPLES, HistoryError, SpoolReader
from mcptool.context.plant import PlantDescription, describe
from mcptool.context.values import ValueSource
from mcptool.context.writes import Refused, Writer
from mcptool.gateway.config import GatewayConfig
from mcptool.modbus.connection import Outcome
from mcptool.modbus.functions import GATEWAY_ABSENT_CODES
from mcptool.modbus.poller import DeviceSpec
from mcptool.modbus.probe import probe

__all__ = ["PlantTools", "ToolProblem"]


class ToolProblem(ToolError):
    """A call the tool cannot answer; the message says why and how to fix the call."""


# One JSON Schema type list instead of pydantic's anyOf of four: the same values allowed,
# and a client checks a 100-point answer against it several times faster (jsonschema
# walks every branch of an anyOf for every value).
Scalar = Annotated[
    bool | int | float | str | None,
    WithJsonSchema({"type": ["number", "boolean", "string", "null"]}),
]


class Values(BaseModel):
    """One device's latest poll, keyed by point: compact for an agent's context (one
    time, units once) and cheap for a client to check against the schema."""

    source: Literal["gateway", "direct"] = Field(
        description="gateway: the running gateway's latest poll; direct: read just now"
    )
    device: str
    ts: float = Field(description="Unix seconds of the poll")
    values: dict[str, Scalar] = Field(description="point -> value; null when it is bad")
    units: dict[str, str] = Field(description="point -> unit of measure (if it has one)")
    errors: dict[str, str] = Field(
        default_factory=dict, description="point -> why its value is bad (bad points only)"
    )


class HistorySample(BaseModel):
    ts: float
    value: bool | int | float | str | None
    quality: str


class History(BaseModel):
    device: str
    point: str
    unit: str
    start: float
    end: float
    samples: list[HistorySample]
    truncated: bool = Field(description="more samples matched than were returned")


class Findings(BaseModel):
    records: list[dict[str, Any]] = Field(
        description="analysis records, newest first: type trigger, finding or analysis_error"
    )
    truncated: bool


class ProbeReport(BaseModel):
    target: str
    unit: int
    outcome: str = Field(description="ok, exception, timeout, refused, unreachable, ...")
    answered: bool
    reason: str = ""
    values: list[int] | None = None
    connect_ms: float | None = None
    response_ms: float | None = None


class Diagnosis(BaseModel):
    device: str
    online: bool
    outcome: str
    explanation: str
    fix: str
    probe: ProbeReport
    gateway_status: dict[str, Any] | None = Field(
        default=None, description="what the running gateway says about the device, if any"
    )


class WriteResult(BaseModel):
    device: str
    point: str
    value: float | bool
    function: int
    registers: list[int]
    response_ms: float


# Why a probe fails, and what to check: one row per probe outcome (mcptool.modbus.outcome)
_EXPLAIN: dict[Outcome, tuple[str, str]] = {
    Outcome.OK: (
        "the device answers Modbus now",
        "if the gateway shows it offline, it is waiting out its backoff; nothing to fix",
    ),
    Outcome.EXCEPTION: (
        "the device answers, but refuses the read with a Modbus exception",
        "check the point's table and address against the device's register map",
    ),
    Outcome.TIMEOUT: (
        "the connection opens but nothing answers the request",
        "check the unit id; a Modbus gateway in front may have lost its serial device",
    ),
    Outcome.REFUSED: (
        "nothing listens on that port: the host answered the connect with a reset",
        "check that the device is powered and its Modbus/TCP server enabled, and the port",
    ),
    Outcome.UNREACHABLE: (
        "the host does not answer the connect at all (no route, or it timed out)",
        "check the cable or network, the IP address and any firewall in between",
    ),
    Outcome.CLOSED: (
        "the device closed the connection without answering",
        "it may allow few connections or only listed clients: check its connection limit",
    ),
    Outcome.RESET: (
        "the device reset the connection without answering",
        "it may allow few connections or only listed clients: check its connection limit",
    ),
    Outcome.MALFORMED: (
        "something answers on that port, but not with Modbus/TCP",
        "check the port: another service (a web server?) listens there",
    ),
}
_ABSENT = (
    "a Modbus gateway answered for the unit, but the device behind it does not",
    "check the unit id, the serial line and the device's power behind the gateway",
)


class PlantTools:
    """The plant of one config, its values, history, findings, probes and writes."""

    def __init__(
        self,
        config: GatewayConfig,
        values: ValueSource,
        *,
        writer: Writer,
        gateway_status: Any = None,
        allow_probe: tuple[str, ...] = (),
    ) -> None:
        self.config = config
        self.devices = {spec.name: spec for spec in config.devices}
        self.values = values
        self.writer = writer
        self.spool = SpoolReader(config.base_dir / config.spool.path)
        # a callable giving the running gateway's status() (None: no gateway here)
        self.gateway_status = gateway_status
        self.allow_probe = allow_probe

    # -- lookups ----------------------------------------------------------------------
    def device(self, name: str) -> DeviceSpec:
        spec = self.devices.get(name)
        if spec is None:
            raise ToolProblem(f'unknown device "{name}": use one of {", ".join(self.devices)}')
        return spec

    def _point(self, spec: DeviceSpec, name: str) -> None:
        if all(p.name != name for p in spec.points):
            known = ", ".join(p.name for p in spec.points)
            raise ToolProblem(f'device {spec.name} has no point "{name}": use one of {known}')

    # -- tools ------------------------------------------------------------------------
    async def list_devices(self) -> PlantDescription:
        """Every device of the plant and its points: name, unit, type, description, and
        whether (and between which bounds) a point may be written."""
        return describe(self.config)

    async def read_values(self, device: str, points: list[str] | None = None) -> Values:
        """The current value of a device's points (all of them unless ``points`` names some),
        with unit, quality and the time of the poll."""
        spec = self.device(device)
        for name in points or ():
            self._point(spec, name)
        current = await self.values.read(spec)
        if not current:
            raise ToolProblem(
                f"{device} was not polled yet: try again after its first poll"
                f" (every {spec.interval:g} s)"
            )
        wanted = set(points or ())
        chosen = [v for v in current if not wanted or v.point in wanted]
        return Values(
            source=self.values.name,  # type: ignore[arg-type]
            device=device,
            ts=round(max(v.ts for v in chosen), 3),
            values={v.point: v.value for v in chosen},
            units={v.point: v.unit for v in chosen if v.unit},
            errors={v.point: v.error for v in chosen if v.quality != "good"},
        )

    async def read_history(
        self,
        device: str,
        point: str,
        minutes: float = 60.0,
        end: str | None = None,
        limit: int = 200,
    ) -> History:
        """A point's readings over the ``minutes`` before ``end`` (ISO 8601; default now),
        oldest first, at most ``limit`` (1-1000) of the newest ones."""
        spec = self.device(device)
        self._point(spec, point)
        if not 1 <= limit <= MAX_SAMPLES:
            raise ToolProblem(f"limit {limit}: use 1 to {MAX_SAMPLES}")
        if not 0 < minutes <= 7 * 24 * 60:
            raise ToolProblem(f"minutes {minutes}: use a span above 0 and at most 10080 (7 days)")
        stop = _time(end) if end else time.time()
        start = stop - minutes * 60.0
        try:
            samples, truncated = await self.spool.samples(device, point, start, stop, limit)
        except HistoryError as exc:
            raise ToolProblem(str(exc)) from None
        unit = next(p.unit for p in spec.points if p.name == point)
        return History(
            device=device,
            point=point,
            unit=unit,
            start=round(start, 3),
            end=round(stop, 3),
            samples=[HistorySample(ts=s.ts, value=s.value, quality=s.quality) for s in samples],
            truncated=truncated,
        )

    async def list_findings(
        self, device: str | None = None, minutes: float = 60.0, limit: int = 20
    ) -> Findings:
        """The analysis's recent triggers and findings (newest first), of one device or all,
        over the last ``minutes``, at most ``limit`` (1-100)."""
        if device is not None:
            self.device(device)
        if not 1 <= limit <= MAX_FINDINGS:
            raise ToolProblem(f"limit {limit}: use 1 to {MAX_FINDINGS}")
        try:
            records, truncated = await self.spool.findings(
                device, time.time() - minutes * 60.0, limit
            )
        except HistoryError as exc:
            raise ToolProblem(str(exc)) from None
        return Findings(records=records, truncated=truncated)

    async def probe(
        self, host: str, port: int = 502, unit: int = 1, address: int = 0
    ) -> ProbeReport:
        """Does a Modbus device answer (read one holding register, nothing else), and how
        fast; only loopback, the configured devices' hosts and hosts allowed at start."""
        if not self._may_probe(host):
            raise ToolProblem(
                f"probing {host} is not allowed: only loopback, the configured devices' hosts"
                " and hosts given with --allow-probe at start"
            )
        if not 1 <= port <= 65535 or not 0 <= unit <= 255 or not 0 <= address <= 65535:
            raise ToolProblem("port 1-65535, unit 0-255 and address 0-65535, please")
        result = await probe(
            host, port, unit=unit, address=address, connect_timeout=2.0, timeout=2.0
        )
        return ProbeReport(
            target=result.target,
            unit=unit,
            outcome=result.outcome.value,
            answered=result.answered,
            reason=result.reason,
            values=None if result.values is None else [int(v) for v in result.values],
            connect_ms=result.connect_ms,
            response_ms=result.response_ms,
        )

    async def explain_offline(self, device: str) -> Diagnosis:
        """Why a device does not answer: a read of its first point, classified (refused,
        unreachable, timeout, exception, ...) with what to check."""
        spec = self.device(device)
        first = spec.points[0]
        function = first.table.function
        result = await probe(
            spec.host,
            spec.port,
            unit=spec.unit,
            function=function,
            address=first.address,
            connect_timeout=spec.connect_timeout,
            timeout=spec.timeout,
        )
        if result.outcome is Outcome.EXCEPTION and result.exception_code in GATEWAY_ABSENT_CODES:
            explanation, fix = _ABSENT
        else:
            explanation, fix = _EXPLAIN[result.outcome]
        status = None
        if self.gateway_status is not None:
            status = next(
                (d for d in self.gateway_status()["devices"] if d["device"] == device), None
            )
        report = ProbeReport(
            target=result.target,
            unit=spec.unit,
            outcome=result.outcome.value,
            answered=result.answered,
            reason=result.reason,
            values=None if result.values is None else [int(v) for v in result.values],
            connect_ms=result.connect_ms,
            response_ms=result.response_ms,
        )
        return Diagnosis(
            device=device,
            online=result.answered,
            outcome=result.outcome.value,
            explanation=explanation if not result.reason else f"{explanation} ({result.reason})",
            fix=fix,
            probe=report,
            gateway_status=status,
        )

    async def write_point(self, device: str, point: str, value: float | bool) -> WriteResult:
        """Write a value to a point the plant's config marks writable, within its min and
        max; every other write is refused. Each attempt is logged as an audit line."""
        try:
            done = await self.writer.write(device, point, value)
        except Refused as exc:
            raise ToolProblem(str(exc)) from None
        return WriteResult(
            device=done.device,
            point=done.point,
            value=done.value,
            function=done.function,
            registers=list(done.registers),
            response_ms=done.response_ms,
        )

    def _may_probe(self, host: str) -> bool:
        if host in self.allow_probe or any(spec.host == host for spec in self.config.devices):
            return True
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def _time(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ToolProblem(
            f'end "{text}" is not an ISO 8601 time: e.g. 2026-11-30T10:00:00Z'
        ) from None
    if moment.tzinfo is None:
        raise ToolProblem(f'end "{text}" has no time zone: add Z or +01:00')
    return moment.timestamp()
