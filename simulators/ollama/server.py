"""An Ollama API server that answers like the real one, deterministically.

The Ollama API itself (routes, request checks, error shapes, NDJSON streaming, timing
fields, scheduling: ``parallel`` requests per model, ``queue`` waiting, 503 beyond it,
cold loads, keep_alive) is ``mcptool.serving.ollama_api``'s, the one
``mcptool model serve`` runs. The simulator brings only what differs: its catalogue of
models (``catalog``), a generator that loads with ``load_delay`` and answers
deterministically with ``token_delay`` between pieces (``generator``), and faults drawn
for each request (``faults``): a status or a cut connection before anything, silence
or an error before the headers, a stream broken after some chunks, blank lines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mcptool import __version__
from mcptool.serving.generator import Prompt
from mcptool.serving.http import DropConnection
from mcptool.serving.ollama_api import OllamaAPI, ServedModel, ServerCounters
from mcptool.serving.wire import BUSY_MESSAGE, ApiError, keep_alive_seconds, rfc3339
from simulators.ollama.catalog import SimModel
from simulators.ollama.faults import Fault, FaultKind, FaultPlan
from simulators.ollama.generator import MID_STREAM, AnswerHook, SimGenerator, strike
from simulators.ollama.script import Script, Scripted

__all__ = ["BUSY_MESSAGE", "Counters", "OllamaSimulator", "keep_alive_seconds", "rfc3339"]

_BLANK_LINE = b"\r\n\n"
SIMULATOR = f"mcptool-ollama-simulator/{__version__}"
"""The ``Server`` header: clients and people can tell the simulator from a real Ollama."""


@dataclass
class Counters(ServerCounters):
    """What the simulator saw: tests assert on these instead of on timing."""

    faults_fired: int = 0
    scripted: int = 0


class OllamaSimulator(OllamaAPI):
    """A deterministic Ollama on loopback.

    ``async with OllamaSimulator(models=["llama3.2"]) as sim:`` then point any client
    at ``sim.url``. Change ``load_delay``, ``token_delay``, models and faults while it
    runs; read ``sim.counters``.
    """

    counters: Counters

    def __init__(
        self,
        models: Iterable[str | SimModel] = ("llama3.2",),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        load_delay: float = 0.0,
        token_delay: float = 0.0,
        parallel: int = 1,
        queue: int = 512,
        version: str = "0.12.6",
        answer: AnswerHook | None = None,
        tokens: tuple[int, int] = (12, 32),
        script: Script | None = None,
    ) -> None:
        super().__init__(
            Counters(),
            host=host,
            port=port,
            parallel=parallel,
            queue=queue,
            version=version,
            server=SIMULATOR,
        )
        self.seed = seed
        self.load_delay = load_delay
        self.token_delay = token_delay
        self.answer = answer
        self.tokens = tokens
        self.script = script
        self.faults = FaultPlan()
        self._modified = time.time_ns()
        for model in models:
            self.add_model(model)

    # -- control while running -----------------------------------------------------------
    def add_model(self, model: str | SimModel) -> SimModel:
        sim_model = model if isinstance(model, SimModel) else SimModel.named(model)
        generator = SimGenerator(self, sim_model)
        self._add(
            ServedModel(
                sim_model.name,
                generator,
                sim_model.size,
                sim_model.details(),
                digest=sim_model.digest,
                modified_ns=self._modified,
                context_length=sim_model.context_length,
                capabilities=tuple(sim_model.capabilities),
                size_vram=sim_model.size,
                show=_show(sim_model),
                embed=generator.embed,
            )
        )
        return sim_model

    def remove_model(self, name: str) -> None:
        self._remove(name)

    def inject(self, kind: FaultKind, **options: Any) -> Fault:
        """Add a fault (see :class:`Fault`); it fires on the next matching request(s)."""
        return self.faults.add(Fault(kind, **options))

    def clear_faults(self) -> None:
        self.faults.clear()

    def _not_found(self, name: str) -> str:
        has = ", ".join(self.models) or "no models"
        return (
            f"model '{name}' not found: the Ollama simulator has {has}; ask for one of "
            f"them, or start it with that model: `mcptool simulate ollama --model {name}`"
        )

    # -- faults, through the Ollama API's hooks ------------------------------------------
    async def _screen(self, path: str, model: ServedModel, body: Mapping[str, Any]) -> Any:
        fault = self.faults.take(path, model.name)
        if fault is None:
            return await self._scripted(path.rsplit("/", 1)[-1], body)
        self.counters.faults_fired += 1
        if fault.kind == "status":
            raise ApiError(fault.status, fault.message)
        if fault.kind == "disconnect":
            raise DropConnection
        return fault

    async def _scripted(self, kind: str, body: Mapping[str, Any]) -> Scripted | None:
        """The script's answer, when one of its rules matches the request."""
        script = self.script
        rule = script.match(kind, body) if script is not None else None
        if script is None or rule is None:
            return None
        self.counters.scripted += 1
        if rule.delay_s:
            await asyncio.sleep(rule.delay_s)
        if rule.status is not None:
            raise ApiError(rule.status, rule.message)
        try:
            return Scripted(rule.text(kind, body))
        except ValueError as exc:
            # Ollama's grammar never lets a model break the schema: a script that does is
            # the server's fault, not the caller's, hence 500 and not 400
            raise ApiError(
                500,
                f"script {script.path}, rule {rule.index}: its "
                f"answer does not match the request's format ({exc}); fix the rule's answer",
            ) from None

    async def _before_load(self, prompt: Prompt) -> None:
        fault = prompt.tag
        if isinstance(fault, Fault) and fault.kind in MID_STREAM and fault.after_chunks == 0:
            await strike(fault)

    def _line_prefix(self, prompt: Prompt) -> bytes:
        fault = prompt.tag
        return _BLANK_LINE if isinstance(fault, Fault) and fault.kind == "blank_lines" else b""


def _show(m: SimModel) -> dict[str, Any]:
    """What ``/api/show`` says of a simulated model beyond its details."""
    size = float(m.parameter_size[:-1]) * (1e9 if m.parameter_size.endswith("B") else 1e6)
    return {
        "license": "simulated model: no license",
        "modelfile": f'# Modelfile generated by "ollama show"\nFROM {m.name}\n',
        "parameters": 'stop                           "<|eot_id|>"',
        "template": "{{ .Prompt }}",
        "model_info": {
            "general.architecture": m.family,
            "general.basename": m.name.split(":")[0],
            "general.parameter_count": int(size),
            f"{m.family}.context_length": m.context_length,
            f"{m.family}.embedding_length": m.embedding_length,
        },
    }
