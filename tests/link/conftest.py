"""Fixtures of the link tests: keys, a fake network between two sans-IO machines."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcptool.link import ClientConnection, MemoryLedger, ServerConnection

KEY = b"0123456789abcdef0123456789abcdef"
NODE = "node-1"


def write_keys(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


class Wire:
    """A client machine, the hub machine of its current connection, and a fake clock.

    ``shuttle()`` carries bytes both ways until both are quiet, the way a loopback
    socket would, but without one: every step is deterministic.
    """

    def __init__(self, client: ClientConnection, keys: dict[str, bytes], **server: object) -> None:
        self.now = 0.0
        self.client = client
        self.keys = keys
        self.server_options = server
        self.ledger = MemoryLedger()
        self.server: ServerConnection | None = None
        self.delivered: list[bytes] = []
        self.client_events: list[object] = []
        self.server_events: list[object] = []

    def open(self) -> ServerConnection:
        """Answer the client's ConnectRequested with a fresh hub connection."""
        self.server = ServerConnection(
            self.keys,
            self.now,
            ledger=self.ledger,
            **self.server_options,  # type: ignore[arg-type]
        )
        self.client.connection_made(self.now)
        return self.server

    def shuttle(self, *, to_server: bool = True, to_client: bool = True) -> None:
        for _ in range(1000):
            moved = False
            data = self.client.data_to_send()
            if data and to_server and self.server is not None:
                self.server.receive_data(data, self.now)
                moved = True
            self._collect()
            if self.server is not None:
                data = self.server.data_to_send()
                if data and to_client:
                    self.client.receive_data(data, self.now)
                    moved = True
            self._collect()
            if not moved:
                return
        raise AssertionError("the two machines never went quiet")

    def _collect(self) -> None:
        from mcptool.link.events import DataReceived

        self.client_events.extend(self.client.events())
        if self.server is not None:
            for event in self.server.events():
                if isinstance(event, DataReceived):
                    self.delivered.append(event.body)
                self.server_events.append(event)

    def establish(self) -> None:
        from mcptool.link import ClientState

        if self.client.state is ClientState.IDLE:
            self.client.connect(self.now)
        self.open()
        self.shuttle()
        assert self.client.state is ClientState.ESTABLISHED

    def advance(self, seconds: float) -> None:
        """Move the clock and tick both machines, like the driver's timers would."""
        self.now += seconds
        self.client.tick(self.now)
        if self.server is not None:
            self.server.tick(self.now)
        self._collect()

    def drop(self, reason: str = "network gone") -> None:
        """The connection vanishes without a word (a pulled cable, a killed hub)."""
        self.client.connection_lost(self.now, reason)
        if self.server is not None:
            self.server.connection_lost(self.now, reason)
        self.client.data_to_send()
        self.server = None
        self._collect()

    def events_of(self, kind: type) -> list:
        self._collect()
        return [e for e in self.client_events if isinstance(e, kind)]


@pytest.fixture
def wire() -> Iterator[Wire]:
    yield Wire(ClientConnection(NODE, KEY), {NODE: KEY}, heartbeat_interval=1.0, dead_after=3)
