"""The embedded model: ``mcptool model serve`` in this process, for when no Ollama runs.

With the ``local-model`` extra installed (llama.cpp through xllamacpp and the packaged
Qwen2.5-Coder-0.5B), the analysis needs no Ollama at all: ``EmbeddedModel`` starts the
same Ollama-API server ``mcptool model serve`` runs, on 127.0.0.1 and a free port, and
asks it through ``OllamaModel``, so the request, the JSON-schema grammar, the errors and
the timings are exactly those of a real Ollama. Nothing listens beyond loopback, and the
server starts on the first ``preload`` (the pipeline preloads at start), not when the
config is read: reading a config must not load half a gigabyte.

The settings suit the packaged 0.5B model on a small CPU box (measured in
docs/OLLAMA.md): a 4096-token context (a window prompt is ~460 tokens, an answer within
the finding schema's bounds 100-300) and at least 60 s per call (12-30 s a finding on two
shared cores).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from mcptool.analysis.config import AnalysisConfig
from mcptool.analysis.model import ModelAnswer, ModelUnavailable
from mcptool.analysis.ollama_model import OllamaModel

__all__ = ["EMBEDDED", "EmbeddedModel", "embedded_available"]

EMBEDDED = "embedded"  # ``[analysis] ollama = "embedded"``
CTX = 4096
MIN_TIMEOUT_S = 60.0


def embedded_available() -> str | None:
    """None when the extra is installed (runtime and every model part), else why not."""
    from mcptool.errors import UsageError
    from mcptool.serving.llama import import_runtime
    from mcptool.serving.weights import INSTALL_HINT, installed

    try:
        import_runtime()
    except UsageError as exc:
        return str(exc)
    if not installed():
        return f"the packaged model is not installed: {INSTALL_HINT}"
    return None


class EmbeddedModel:
    """An ``AnalysisModel`` on an in-process ``mcptool model serve`` (loopback only)."""

    def __init__(self, config: AnalysisConfig, *, threads: int | None = None) -> None:
        from mcptool.serving.weights import QWEN_CODER_05B

        self.name = QWEN_CODER_05B.name
        self.config = dataclasses.replace(
            config,
            model=self.name,
            num_ctx=config.num_ctx or CTX,
            request_timeout_s=max(config.request_timeout_s, MIN_TIMEOUT_S),
        )
        self.threads = threads or os.cpu_count() or 1
        self.url: str | None = None
        self.load_s: float | None = None
        self._server: Any = None
        self._generator: Any = None
        self._model: OllamaModel | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> str:
        """Join and check the weights if needed, listen on loopback, load; the URL."""
        async with self._starting:
            if self.url is not None:
                return self.url
            from mcptool.serving.gguf import read_gguf
            from mcptool.serving.llama import LlamaGenerator, import_runtime
            from mcptool.serving.ollama_api import OllamaServer
            from mcptool.serving.weights import packaged_model_path

            runtime = import_runtime()
            # joining and hashing 491 MB takes seconds: not on the event loop
            path = await asyncio.to_thread(packaged_model_path)
            info = read_gguf(path)
            ctx = self.config.num_ctx or CTX
            self._generator = LlamaGenerator(
                info, threads=self.threads, ctx=ctx, parallel=1, runtime=runtime
            )
            self._server = OllamaServer(self._generator, self.name, host="127.0.0.1", port=0)
            await self._server.start()
            keep = 1e9  # the analysis' whole run: a cold load per finding would double it
            self.load_s = await self._server.preload(keep_alive=keep)
            self.url = self._server.url
            self._model = OllamaModel.connect(self.url, self.config)
            return self.url

    async def preload(self) -> None:
        await self.start()

    async def ask(
        self, messages: Sequence[Mapping[str, str]], schema: Mapping[str, Any]
    ) -> ModelAnswer:
        try:
            await self.start()
        except Exception as exc:  # a model that cannot load: statistics findings meanwhile
            raise ModelUnavailable(f"the embedded model cannot start: {exc}") from exc
        assert self._model is not None
        return await self._model.ask(messages, schema)

    async def aclose(self) -> None:
        if self._model is not None:
            await self._model.aclose()
        if self._server is not None:
            await self._server.stop()
        if self._generator is not None:
            await self._generator.close()
        self._model = self._server = self._generator = None
        self.url = None
