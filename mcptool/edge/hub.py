"""The hub's analysis, wired: relayed polls into the pipeline, findings out through the
one MQTT publisher (the gateway's MQTT sink: TLS, flow control, PUBACK reason codes).

``hub_analysis(ollama_url, mqtt_url)`` is what ``mcptool hub --ollama/--mqtt`` runs;
each finding goes to ``analysis_topic`` of an ``[mqtt]`` table (``MqttConfig``, by
default ``mcptool/{node}/{device}/analysis``) with the node it came from.

``analyze_handler(analysis)`` answers the ``analyze`` REQUEST with the same model (or
router) as the relayed polls: a window in the request's data, its finding in the
RESPONSE (docs/LINK.md, "The analyze action").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mcptool.analysis.config import AnalysisConfig
from mcptool.analysis.hub import HubAnalysis
from mcptool.analysis.model import AnalysisModel
from mcptool.analysis.pipeline import Sink
from mcptool.errors import McptoolError, UsageError
from mcptool.gateway.sinks.forwarder import SinkError
from mcptool.gateway.sinks.mqtt import MqttTransport
from mcptool.gateway.sinks.settings import MqttConfig
from mcptool.gateway.spool import Kind
from mcptool.link import Handler, HandlerError

if TYPE_CHECKING:
    from mcptool.frame import RequestEnvelope

__all__ = [
    "NO_MODEL",
    "MqttFindings",
    "SinkUnavailable",
    "analyze_handler",
    "hub_analysis",
    "load_analysis",
    "mqtt_settings",
]


class SinkUnavailable(McptoolError):
    """The broker cannot take the record now (the pipeline keeps it and tries again)."""


def mqtt_settings(url: str, *, client_id: str = "") -> MqttConfig:
    """``mqtt://[user:password@]host[:port]`` (``mqtts://`` for TLS) as MQTT settings; the
    client id is left to the broker unless given."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts", "tcp"):
        raise UsageError(f"--mqtt {url}: use mqtt://host:port (or mqtts:// for TLS)")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise UsageError(f"--mqtt {url}: the port is not a number from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"--mqtt {url}: the port is not a number from 1 to 65535")
    return MqttConfig(
        host=parts.hostname or "127.0.0.1",
        port=port,
        username=parts.username,
        password=parts.password,
        tls=parts.scheme == "mqtts",
        client_id=client_id,
    )


class MqttFindings:
    """A pipeline sink: ``await sink(record)`` publishes an analysis record (kind finding)
    through ``MqttTransport`` and returns once the broker acknowledged it. The connection
    is opened on first use and again after a failure."""

    def __init__(self, settings: MqttConfig, node: str = "hub") -> None:
        self.mqtt = MqttTransport(settings, node)
        self.node = node
        self.where = f"MQTT broker {settings.host}:{settings.port}"

    async def __call__(self, record: dict[str, Any]) -> None:
        node = str(record.get("node") or self.node)
        device = str(record.get("device", "gateway"))
        topic = self.mqtt.topic(device, Kind.FINDING, node=node)
        message = {"kind": Kind.FINDING.value, **record}
        payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str)
        try:
            if not self.mqtt.connected:
                await self.mqtt.connect()
            await self.mqtt.publish(topic, payload.encode())
        except (SinkError, OSError) as exc:
            await self.mqtt.close()
            raise SinkUnavailable(f"{self.where}: {exc}") from exc

    async def aclose(self) -> None:
        await self.mqtt.close()


def hub_analysis(
    ollama_url: str | None,
    mqtt_url: str | None,
    *,
    model: str | None = "llama3.2",
    config: AnalysisConfig | None = None,
    sinks: Iterable[Sink] = (),
) -> HubAnalysis:
    """The hub's analysis from its command-line options (either URL may be None).

    ``config`` (an ``[analysis]`` table) may name the model itself: its ``ollama``, or
    its ``routes`` (several models, checked, critical windows to the bigger one first);
    ``ollama_url`` and ``model``, when given, take the place of its ``ollama`` and
    ``model``."""
    config = config or AnalysisConfig()
    if model is not None:
        config = dataclasses.replace(config, model=model)
    if ollama_url:
        config = dataclasses.replace(config, ollama=ollama_url)
    every: list[Sink] = list(sinks)
    closers: list[Any] = []
    if mqtt_url:
        mqtt = MqttFindings(mqtt_settings(mqtt_url))
        every.append(mqtt)
        closers.append(mqtt)
    llm: AnalysisModel | None = None
    if config.ollama or config.routes:
        from mcptool.edge.analysis import analysis_model

        llm = analysis_model(config)
        closers.append(llm)
    return HubAnalysis(config, model=llm, sinks=every, closers=closers)


def load_analysis(path: str) -> AnalysisConfig:
    """The ``[analysis]`` table of the TOML file at ``path`` (``mcptool hub
    --analysis-config``; a gateway's config file will do: its other tables are not
    read). Every problem is a ``UsageError`` naming the file and the key."""
    import tomllib
    from pathlib import Path

    from mcptool.analysis.config import AnalysisConfigError

    file = Path(path)
    try:
        table = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--analysis-config {path}: cannot read it: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--analysis-config {path}: not TOML: {exc}") from None
    if "analysis" not in table:
        raise UsageError(f"--analysis-config {path}: no [analysis] table in it")
    try:
        return AnalysisConfig.from_dict(table["analysis"], base_dir=file.parent)
    except AnalysisConfigError as exc:
        raise UsageError(f"--analysis-config {path}: {exc}") from None


NO_MODEL = (
    "this hub has no model to analyse with: start it with --ollama URL (or"
    " --analysis-config FILE with [analysis] routes)"
)


def analyze_handler(analysis: HubAnalysis | None, *, timeout_s: float = 25.0) -> Handler:
    """The ``analyze`` action: the request's window through the hub's model; the RESPONSE
    carries the finding and the model that answered (``{"model", "finding"}``), or a
    code that says why not: 400 a bad window (every problem with its path), 502 an
    answer that stayed invalid, 503 no model could answer (with the statistics
    finding), 504 none within ``timeout_s``."""
    from mcptool.analysis.analyze import analyze, parse_window
    from mcptool.edge.analysis import RECORD_LIMIT
    from mcptool.edge.analysis_sink import fit

    async def handle(data: Any, request: RequestEnvelope) -> Any:
        window, problems = parse_window(data)
        if window is None:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise HandlerError(
                400,
                f"bad analyze request: {problems[0]}{more}",
                {"problems": [{"path": p.path, "message": p.message} for p in problems]},
            )
        pipeline = analysis.pipeline if analysis is not None else None
        if pipeline is None or pipeline.model is None:
            raise HandlerError(503, NO_MODEL)
        outcome = await analyze(
            window,
            config=pipeline.config,
            model=pipeline.model,
            prompts=pipeline.prompts,
            timeout_s=timeout_s,
        )
        # one RESPONSE is one frame: a finding is cut as the uplink cuts it
        body = {k: json.loads(fit(v, RECORD_LIMIT)) if isinstance(v, dict) else v
                for k, v in outcome.data.items()}  # fmt: skip
        if outcome.code != 200:
            raise HandlerError(outcome.code, outcome.message, body)
        return body

    return handle
