"""The tools the context server offers, as plain async methods with typed results.

The MCP server (``server.py``) and ``mcptool ask`` (``agent.py``) both register these,
so an agent gets the same answers whichever way it comes. A user error (an unknown
device, a point that is not writable, a value out of bounds, a spool not there) raises
``ToolProblem`` with one line naming the thing and the fix; the SDK turns it into a
tool error (``isError``), which the agent can read and correct.
"""

from __future__ import annotations

import asyncio
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
from mcptool.modbus.pdu import ProbeRequest
from mcptool.modbus.poller import DeviceSpec
from mcptool.modbus.probe import ProbeResult, probe
from mcptool.modbus.scan import Scanner, ScanOptions
from mcptool.modbus.targets import TargetError, parse_target, parse_units, resolve_targets

__all__ = ["MAX_SCAN_TARGETS", "MAX_SCAN_UNITS", "SCAN_SECONDS", "PlantTools", "ToolProblem"]

# One scan call from an agent is a question, not a survey: at most this many targets and
# unit ids (so at most 256 probes), each probe waiting at most 1 s, the whole call at most
# SCAN_SECONDS (then it answers with what it has).
MAX_SCAN_TARGETS = 16
MAX_SCAN_UNITS = 16
SCAN_SECONDS = 20.0


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


class ScanProbe(ProbeReport):
    exception: str | None = Field(default=None, description="the Modbus exception's name")
    identity: dict[str, Any] | None = Field(
        default=None, description="what the device says about itself (identify=true)"
    )


class ScanReport(BaseModel):
    targets: list[str] = Field(description="host:port of every target, ranges expanded")
    units: list[int]
    probes: list[ScanProbe] = Field(description="one per target and unit id, as they finished")
    answered: int = Field(description="probes whose device answered Modbus")
    complete: bool = Field(description="false: the time bound ended the scan early")
    seconds: float


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
        if all(v.quality != "good" for v in chosen):
            # nothing to read is the agent's cue to look elsewhere: say where
            reasons = "; ".join(dict.fromkeys(v.error for v in chosen if v.error)) or "no value"
            raise ToolProblem(
                f"{device} gave no current value ({reasons}): read_history has its last"
                " known values, list_findings what the analysis saw, explain_offline why"
            )
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
        return _report(result, unit)

    async def scan(
        self, targets: list[str], units: str = "1", address: int = 0, identify: bool = False
    ) -> ScanReport:
        """Which of a few targets (host, host:port, a small loopback CIDR) and unit ids
        (e.g. "1-5") answer Modbus: one holding-register read each, nothing else; at most
        16 targets and 16 unit ids; only loopback, the configured devices' hosts and hosts
        allowed at start. identify=true also asks answering devices who they are."""
        try:
            unit_ids = parse_units(units)
        except TargetError as exc:
            raise ToolProblem(str(exc)) from None
        if len(unit_ids) > MAX_SCAN_UNITS:
            raise ToolProblem(
                f'units "{units}" is {len(unit_ids)} unit ids: scan at most {MAX_SCAN_UNITS}'
                " a call (e.g. 1-16, then 17-32)"
            )
        if not targets:
            raise ToolProblem('no targets: give hosts, e.g. ["127.0.0.1:502"]')
        if not 0 <= address <= 65535:
            raise ToolProblem(f"address {address}: use 0-65535")
        for text in targets:
            self._may_scan(text)
        try:
            found = await resolve_targets(targets)
        except TargetError as exc:
            raise ToolProblem(str(exc)) from None
        if len(found) > MAX_SCAN_TARGETS:
            raise ToolProblem(
                f"{len(found)} targets: scan at most {MAX_SCAN_TARGETS} a call (a smaller"
                " range, or fewer hosts)"
            )
        options = ScanOptions(
            units=unit_ids,
            request=ProbeRequest(3, address, 1),
            connect_timeout=1.0,
            timeout=1.0,
            identify=identify,
            concurrency=MAX_SCAN_TARGETS,
        )
        scanner = Scanner(found, options)
        results: list[ProbeResult] = []
        complete = True
        started = time.perf_counter()
        try:
            async with asyncio.timeout(SCAN_SECONDS):
                async for result in scanner.results():
                    results.append(result)
        except TimeoutError:
            complete = False
        return ScanReport(
            targets=[t.label for t in found],
            units=unit_ids,
            probes=[
                ScanProbe(
                    **_report(r, r.unit or 0).model_dump(),
                    exception=r.exception_name,
                    identity=None if r.identity is None else r.identity.as_dict(),
                )
                for r in results
            ],
            answered=sum(r.answered for r in results),
            complete=complete,
            seconds=round(time.perf_counter() - started, 3),
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
        report = _report(result, spec.unit)
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

    def _may_scan(self, text: str) -> None:
        """Refuse a target beyond loopback, the configured hosts and --allow-probe."""
        try:
            spec = parse_target(text)
        except TargetError as exc:
            raise ToolProblem(str(exc)) from None
        if spec.serial is not None:
            raise ToolProblem(f"{text}: the scan tool reaches TCP targets only, not serial lines")
        if spec.network is not None:
            loopback = spec.network.network_address.is_loopback and (
                spec.network.broadcast_address.is_loopback
            )
            if not loopback:
                raise ToolProblem(
                    f"scanning {spec.host} is not allowed: a range only within loopback"
                    " (127.0.0.0/8); name configured or --allow-probe hosts one by one"
                )
            if spec.network.num_addresses > MAX_SCAN_TARGETS + 2:
                raise ToolProblem(
                    f"{spec.host} has {spec.network.num_addresses} addresses: scan at most"
                    f" {MAX_SCAN_TARGETS} a call (e.g. a /28)"
                )
        elif not self._may_probe(spec.host):
            raise ToolProblem(
                f"scanning {spec.host} is not allowed: only loopback, the configured devices'"
                " hosts and hosts given with --allow-probe at start"
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


def _report(result: ProbeResult, unit: int) -> ProbeReport:
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
