"""``McpPeer``: a hub for tests that records deliveries and can misbehave on demand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping
from typing import Any

from mcptool.frame import RequestEnvelope
from mcptool.link import HandlerError, Ledger, LinkServer, MemoryLedger


class McpPeer(LinkServer):
    """A LinkServer with ``echo``/``time``/``status``/``fail`` handlers and a delivery log.

    ``crash_at``: numbers of delivered frames at which the peer crashes (see :meth:`crash`).

    ``delivered`` holds ``(node_id, seq, body)`` in delivery order; pass the same
    ``ledger`` and ``delivered`` list to a new peer to model a hub restarted with its
    state (the ``--journal`` of ``mcptool hub``).
    """

    def __init__(
        self,
        keys: Mapping[str, bytes],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ledger: Ledger | None = None,
        delivered: list[tuple[str, int, bytes]] | None = None,
        crash_at: Collection[int] = (),
        **options: Any,
    ) -> None:
        self.delivered: list[tuple[str, int, bytes]] = [] if delivered is None else delivered
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.crash_at = frozenset(crash_at)
        self.crashed = asyncio.Event()
        handlers = {
            "echo": lambda data, request: data,
            "time": lambda data, request: {"unix_ms": time.time_ns() // 1_000_000},
            "status": self._status,
            "fail": self._fail,
            **options.pop("handlers", {}),
        }
        super().__init__(
            host,
            port,
            keys,
            on_data=self._record,
            on_event=lambda node, body: self.events.append((node, body)),
            handlers=handlers,
            ledger=ledger if ledger is not None else MemoryLedger(),
            **options,
        )

    def _record(self, node_id: str, seq: int, body: bytes) -> None:
        self.delivered.append((node_id, seq, body))
        if len(self.delivered) in self.crash_at and not self.crashed.is_set():
            self.crash()

    def crash(self) -> None:
        """Die like a killed process, right now: after delivering, before acknowledging.

        The listener closes and every connection is reset without a CLOSE; frames
        delivered in this very read are never acknowledged, so the node sends them again
        to whatever hub comes next. That hub must drop them as duplicates.
        """
        self.crashed.set()
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.closed = True
            connection.abort()

    def bodies(self, node_id: str | None = None) -> list[bytes]:
        return [body for node, _, body in self.delivered if node_id in (None, node)]

    def _status(self, data: Any, request: RequestEnvelope) -> dict[str, Any]:
        return {"nodes": sorted(self.sessions), "delivered": len(self.delivered)}

    def _fail(self, data: Any, request: RequestEnvelope) -> None:
        if isinstance(data, dict) and "code" in data:
            raise HandlerError(int(data["code"]), str(data.get("message", "failed on request")))
        raise RuntimeError("asked to fail")
