"""Analysis at the hub: the same pipeline, fed with the polls relayed over the MCP link.

When Ollama runs next to the hub rather than next to the devices, the hub analyses what
gateways send it: each DATA frame that carries a poll message (the gateway's JSON) is
fed to the pipeline under the device name ``<node>/<device>``, so two sites with a
device called ``boiler`` never share a window. Records of another kind than telemetry
(findings a gateway analysed itself) are not analysed again. Findings go to the sinks
given; ``mcptool.edge.hub_analysis`` wires MQTT and Ollama from the hub's options::

    analysis = hub_analysis(ollama_url, mqtt_url, model=model)   # options
    on_data(...): analysis.on_data(node, seq, body)              # each frame
    async with analysis: ...                                      # around run

Offline detection at the hub counts from when data arrives, not when it was read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from mcptool.analysis.config import AnalysisConfig
from mcptool.analysis.model import AnalysisModel
from mcptool.analysis.pipeline import AnalysisPipeline, Sink
from mcptool.analysis.polls import analyse_poll, fan_out

__all__ = ["HubAnalysis"]

log = logging.getLogger(__name__)


class HubAnalysis:
    """Feeds relayed polls to an ``AnalysisPipeline``; records name their node."""

    def __init__(
        self,
        config: AnalysisConfig,
        *,
        model: AnalysisModel | None,
        sinks: Iterable[Sink],
        closers: Iterable[Any] = (),
    ) -> None:
        self._sink = fan_out(*sinks)
        self.pipeline = AnalysisPipeline(config, sink=self._split_node, model=model)
        self._closers = list(closers)
        # the pipeline's device name "<node>/<device>" -> (node, device): node ids may hold
        # a "/" themselves, so the name is not split back
        self._origin: dict[str, tuple[str, str]] = {}
        self.frames = 0
        self.polls = 0
        self.skipped = 0

    def on_data(self, node: str, seq: int, body: bytes) -> None:
        """One DATA frame from ``node`` (call it from the hub's ``on_data``)."""
        self.frames += 1
        try:
            message = json.loads(body)
            device = message.get("device") if isinstance(message, dict) else None
            if isinstance(device, str):
                name = f"{node}/{device}"
                if name not in self._origin:
                    self._origin[name] = (node, device)
                self.polls += analyse_poll(self.pipeline, {**message, "device": name})
        except Exception as exc:  # the hub keeps acknowledging whatever the analysis thinks
            self.skipped += 1
            log.debug("analysis skipped frame %d of %s: %s", seq, node, exc)

    async def _split_node(self, record: dict[str, Any]) -> None:
        name = str(record.get("device", ""))
        origin = self._origin.get(name)
        if origin is None:  # a backlog job from before a restart, its device not seen yet
            node, _, device = name.partition("/")
            origin = (node, device or node)
        await self._sink({**record, "node": origin[0], "device": origin[1]})

    async def start(self) -> HubAnalysis:
        await self.pipeline.start()
        return self

    async def close(self) -> None:
        await self.pipeline.close()
        for closer in self._closers:
            await closer.aclose()

    async def __aenter__(self) -> HubAnalysis:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
