"""Fixtures of the link tests: keys, a fake network between two sans-IO machines."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from mcptool.link import Backoff, ClientConnection, MemoryLedger, ServerConnection
from simulators.mcp import McpPeer

KEY = b"0123456789abcdef0123456789abcdef"
NODE = "node-1"

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A link test that leaks a file, socket or transport fails, here and not in the field.

    A hub runs for months: a descriptor left open per connection or per restart of a
    component is an outage in slow motion. Python reports such objects with a
    ResourceWarning when they are collected, which is ignored by default and, raised from
    ``__del__``, reaches pytest only as an "unraisable" exception; both become errors.
    (This hook sees the whole session's items, hence the path check.)
    """
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.filterwarnings("error::ResourceWarning"))
            item.add_marker(
                pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
            )


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


async def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


def fast_backoff() -> Backoff:
    return Backoff(initial=0.05, maximum=0.2)


@pytest.fixture
async def peer() -> AsyncIterator[McpPeer]:
    hub = McpPeer({NODE: KEY, "node-2": KEY[::-1]}, heartbeat_interval=1.0)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, made for this test."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcptool test hub")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "hub.crt", tmp_path / "hub.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path
