"""The sink registry: every destination of the gateway, declared in one place each.

A ``SinkType`` says all the gateway needs to know about a destination: the config table
it is set up by (its name, also its name in the spool, ``/metrics`` and the statuses),
the settings model of that table, the factory that makes its ``Transport``, how many
records it may have in flight, and its drop behaviour (the kinds of drop it reports for
records it can never deliver; none for a destination that never gives up on one). Config
parsing, ``gateway check``, the ``Gateway`` and its status read the registry; nothing
else spells a sink's name.

The built-in sinks (``mqtt``, ``jsonl``, ``uplink``) are in ``SINKS``. A layer above
adds its own with ``SINKS.with_sink(...)`` (``mcptool.edge`` adds ``analysis``) and
passes the result to ``parse_config`` and ``Gateway``. Adding a sink: docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from mcptool.gateway.sinks.settings import JsonlConfig, MqttConfig, UplinkConfig
from mcptool.problems import Problem, problems_of

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from mcptool.gateway.config import GatewayConfig
    from mcptool.gateway.sinks.forwarder import Transport
    from mcptool.gateway.spool import Spool
    from mcptool.gateway.tracing import GatewayTracing

__all__ = ["SINKS", "SinkContext", "SinkRegistry", "SinkType"]


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What a factory may use besides its own settings."""

    config: GatewayConfig
    spool: Callable[[], Spool]  # the gateway's spool (made after the sinks)
    metrics: CollectorRegistry  # the gateway's /metrics
    at_stop: Callable[[Callable[[], Awaitable[None]]], None]  # run after the gateway stopped
    tracing: GatewayTracing | None = None  # the gateway's spans ([tracing]); None: off


def _no_problems(settings: Any) -> list[Problem]:
    return []


def _always(settings: Any) -> bool:
    return True


def _no_files(settings: Any) -> list[tuple[str, Any, bool]]:
    return []


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}  # validators, made once per settings model


@dataclass(frozen=True, slots=True)
class SinkType:
    """One kind of destination (see the module doc)."""

    name: str
    settings: Any  # the model of its table: a pydantic model or pydantic dataclass
    build: Callable[[Any, SinkContext], Transport]
    # the ``Dropped.kind`` of each drop it can report; none: it never gives up on a record
    drop_kinds: tuple[str, ...] = ()
    window: Callable[[Any], int] = lambda settings: 100
    # checks across keys, paths relative to the table ("key" -> "mqtt.key")
    problems: Callable[[Any], list[Problem]] = _no_problems
    # files a run opens: (key, path relative to the config, True if written)
    files: Callable[[Any], list[tuple[str, Any, bool]]] = _no_files
    enabled: Callable[[Any], bool] = _always  # False: configured but switched off
    # it carries records out of the gateway (a config needs one such sink)
    delivers: bool = True
    # its connection also carries the retained statuses: (status_topic, gateway_topic)
    statuses: Callable[[Any], tuple[str, str]] | None = None
    describe: Callable[[Any], str] | None = None  # for `gateway check`; default: its name

    def parse(self, table: object, base_dir: Path) -> tuple[Any, list[Problem]]:
        """Its settings from the table, or None and every problem with its full path."""
        adapter = _ADAPTERS.get(self.settings)
        if adapter is None:
            adapter = _ADAPTERS[self.settings] = TypeAdapter(self.settings)
        if not isinstance(table, Mapping):
            return None, [Problem(self.name, f"should be a table ([{self.name}])")]
        try:
            settings = adapter.validate_python(dict(table), context={"base_dir": base_dir})
        except ValidationError as exc:
            return None, problems_of(exc.errors(), (self.name,))
        problems = [
            Problem(f"{self.name}.{p.path}" if p.path else self.name, p.message)
            for p in self.problems(settings)
        ]
        return (None if problems else settings), problems

    def label(self, settings: Any) -> str:
        return self.describe(settings) if self.describe is not None else self.name


class SinkRegistry:
    """The sink types a config may use, in the order their sinks are built."""

    def __init__(self, types: tuple[SinkType, ...]) -> None:
        self._types = {t.name: t for t in types}

    def with_sink(self, sink: SinkType) -> SinkRegistry:
        """This registry and ``sink`` (replacing a type of the same name, in its place)."""
        types = dict(self._types)
        types[sink.name] = sink
        return SinkRegistry(tuple(types.values()))

    def __iter__(self) -> Iterator[SinkType]:
        return iter(self._types.values())

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __getitem__(self, name: str) -> SinkType:
        return self._types[name]

    def names(self) -> list[str]:
        return list(self._types)


# -- the built-in sinks --------------------------------------------------------------------


def _mqtt(settings: MqttConfig, context: SinkContext) -> Transport:
    from mcptool.gateway.sinks.mqtt import MqttTransport

    config = context.config
    return MqttTransport(settings, config.node, base_dir=config.base_dir)


def _mqtt_problems(settings: MqttConfig) -> list[Problem]:
    problems = []
    for key in ("topic", "analysis_topic", "status_topic", "gateway_topic", "client_id"):
        problem = _template_problem(getattr(settings, key))
        if problem:
            problems.append(Problem(key, problem))
    return problems


def _template_problem(template: str) -> str | None:
    try:
        template.format(node="n", device="d")
    except KeyError as exc:
        return f"unknown placeholder {{{exc.args[0]}}} (use {{node}} and {{device}})"
    except (ValueError, IndexError):
        return 'bad placeholder: write {node} and {device}, and "{{" for a literal "{"'
    return None


def _jsonl(settings: JsonlConfig, context: SinkContext) -> Transport:
    from mcptool.gateway.sinks.jsonl import JsonlTransport

    return JsonlTransport(settings.path, base_dir=context.config.base_dir)


def _uplink(settings: UplinkConfig, context: SinkContext) -> Transport:
    from mcptool.gateway.sinks.mcp import UplinkTransport

    config = context.config
    return UplinkTransport(settings, config.node, config.base_dir, tracing=context.tracing)


def _uplink_problems(settings: UplinkConfig) -> list[Problem]:
    if settings.key or settings.key_file:
        return []
    return [Problem("key", "missing: give key or key_file (shared secret)")]


MQTT = SinkType(
    name="mqtt",
    settings=MqttConfig,
    build=_mqtt,
    drop_kinds=("over_max_packet", "refused", "disconnects"),
    window=lambda settings: settings.window,
    problems=_mqtt_problems,
    files=lambda s: [(k, getattr(s, k), False) for k in ("ca_file", "cert_file", "key_file")],
    statuses=lambda settings: (settings.status_topic, settings.gateway_topic),
)
JSONL = SinkType(
    name="jsonl",
    settings=JsonlConfig,
    build=_jsonl,
    files=lambda s: [] if s.path == "-" else [("path", s.path, True)],
)
UPLINK = SinkType(
    name="uplink",
    settings=UplinkConfig,
    build=_uplink,
    drop_kinds=("over_frame",),
    window=lambda settings: settings.window,
    problems=_uplink_problems,
    files=lambda s: [(k, getattr(s, k), False) for k in ("key_file", "ca_file")],
)

SINKS = SinkRegistry((MQTT, JSONL, UPLINK))
