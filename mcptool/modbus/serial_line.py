"""A serial line (RS-485/RS-232) as a Modbus RTU bus: one request at a time, shared by
the units on it.

The port is driven by pyserial-asyncio-fast (the maintained fork of pyserial-asyncio,
which Home Assistant's Modbus integration runs on; pyserial-asyncio itself has had no
release since 2021): an ``asyncio.Protocol`` whose ``data_received`` hands bytes, with
the loop's clock, to the RTU framing. The framing knows where a reply ends from its
first bytes (``rtu``), so an exchange finishes with the reply's last byte; the bus keeps
the 3.5-character silence before each request and lets only one request be on the line
at a time, whoever sends it (units of one bus in the gateway, a scan's unit sweep).

A bus is opened once per port and event loop and shared by everyone who opens it with the
same settings (``SerialBus.open`` counts users; ``close`` releases one).
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from mcptool.errors import UsageError
from mcptool.modbus.framing import RtuFraming
from mcptool.modbus.mbap import Answer, Malformed
from mcptool.modbus.outcome import Cause, Failure
from mcptool.modbus.pdu import check_read_only_pdu
from mcptool.modbus.rtu import char_time, inter_frame_delay

__all__ = [
    "PARITIES",
    "SerialBus",
    "SerialPortError",
    "SerialSettings",
    "is_pty",
    "parse_serial",
    "serial_options",
]

try:
    import termios

    #: What pyserial lets through when the OS refuses a setting (parity on a pty).
    TERMIOS_ERRORS: tuple[type[Exception], ...] = (termios.error,)
except ImportError:  # Windows: no termios, pyserial raises SerialException there
    TERMIOS_ERRORS = ()

PARITIES: Final = {"N": "none", "E": "even", "O": "odd"}
#: The silence after which a half-received frame is given up. USB serial adapters hand
#: bytes over in bursts up to their latency timer apart (16 ms on FTDI chips), and a pty
#: relayed by socat as the scheduler allows, so the specification's 3.5 characters
#: (1.75 ms at 19200 baud) would cut real frames in two; frames are found by their length
#: and CRC anyway, and this silence only clears noise.
SILENCE_FLOOR: Final = 0.05


class SerialPortError(UsageError):
    """A serial port that cannot be opened, or settings that are not a serial line's."""


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """Where and how: the port, and the line's baud rate, parity, stop and data bits."""

    port: str
    baudrate: int = 19200  # Modbus over serial line 2.5.1: 19200 and even parity by default
    parity: str = "E"
    stopbits: int = 1
    bytesize: int = 8

    def __post_init__(self) -> None:
        if not self.port:
            raise SerialPortError("no serial port given: write e.g. /dev/ttyUSB0")
        if not 50 <= self.baudrate <= 4_000_000:
            raise SerialPortError(f"baud rate {self.baudrate}: use 50-4000000, e.g. 9600, 19200")
        if self.parity not in PARITIES:
            raise SerialPortError(f"parity {self.parity!r}: use N (none), E (even) or O (odd)")
        if self.stopbits not in (1, 2):
            raise SerialPortError(f"stop bits {self.stopbits}: use 1 or 2")
        if self.bytesize != 8:
            raise SerialPortError(f"data bits {self.bytesize}: RTU needs 8 (7 is ASCII's)")

    @property
    def bits_per_char(self) -> int:
        return 1 + self.bytesize + (self.parity != "N") + self.stopbits

    @property
    def line(self) -> str:
        """``19200 8E1``: the line settings as a device's manual writes them."""
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"

    @property
    def url(self) -> str:
        query = f"baudrate={self.baudrate}&parity={self.parity}&stopbits={self.stopbits}"
        return f"rtu://{self.port}?{query}"


def serial_options(settings: SerialSettings) -> dict[str, Any]:
    """pyserial's keyword arguments for ``settings``.

    A pseudo-terminal (``/dev/pts/N``, and socat's links to one) carries bytes, not bits:
    Linux refuses parity on it (EINVAL), so there the parity is left out; the timing
    still follows every setting.
    """
    options: dict[str, Any] = {
        "baudrate": settings.baudrate,
        "parity": settings.parity,
        "stopbits": settings.stopbits,
        "bytesize": settings.bytesize,
    }
    if is_pty(settings.port):
        options["parity"] = "N"
    return options


def is_pty(port: str) -> bool:
    """Whether ``port`` is a pseudo-terminal (or a link to one, as socat makes)."""
    return os.path.realpath(port).startswith("/dev/pts/")


_KEYS: Final = {"baudrate": int, "parity": str, "stopbits": int, "bytesize": int}


def parse_serial(text: str, defaults: SerialSettings | None = None) -> SerialSettings | None:
    """A serial target, or None if ``text`` is not one.

    Serial targets are ``rtu:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1`` (the
    query is optional; ``defaults`` fills what it leaves out) or a bare device path
    (``/dev/ttyUSB0``, a link such as socat's ``/tmp/ttyS1``, ``COM3``): an absolute path
    is never a host.
    """
    base = defaults or SerialSettings("-")
    if text.startswith("rtu:"):
        url = urllib.parse.urlsplit(text)
        port = url.path if not url.netloc else f"/{url.netloc}{url.path}"
        values: dict[str, Any] = {}
        for key, value in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
            kind = _KEYS.get(key)
            if kind is None:
                raise SerialPortError(
                    f"{key!r} in {text!r}: serial settings are {', '.join(_KEYS)}"
                )
            try:
                values[key] = kind(value.upper() if kind is str else value)
            except ValueError:
                raise SerialPortError(f"{key}={value!r} in {text!r} is not a number") from None
        return SerialSettings(
            port,
            values.get("baudrate", base.baudrate),
            values.get("parity", base.parity),
            values.get("stopbits", base.stopbits),
            values.get("bytesize", base.bytesize),
        )
    if text.startswith("/") or (text.upper().startswith("COM") and text[3:].isdigit()):
        return SerialSettings(text, base.baudrate, base.parity, base.stopbits, base.bytesize)
    return None


_TIMEOUT: Final = Failure(Cause.TIMEOUT, "no reply before the deadline")
_BROADCAST: Final = Failure(
    Cause.TIMEOUT,
    "unit 0 is the broadcast address on a serial line: no device answers it; "
    "give the device's unit (1-247)",
)


class _Line(asyncio.Protocol):
    def __init__(self, bus: SerialBus) -> None:
        self.bus = bus

    def data_received(self, data: bytes) -> None:
        self.bus._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.bus._lost(exc)


class SerialBus:
    """An open serial port: exchanges one at a time, like ``ModbusConnection`` over TCP."""

    _open: ClassVar[dict[tuple[int, str], SerialBus]] = {}

    #: The guard every request passes (see ``connection.ModbusConnection.guard``).
    guard = staticmethod(check_read_only_pdu)

    def __init__(self, settings: SerialSettings, connect_ms: float) -> None:
        self.settings = settings
        self.connect_ms = connect_ms
        self._loop = asyncio.get_running_loop()
        self._char = char_time(settings.baudrate, settings.bits_per_char)
        self._quiet = inter_frame_delay(settings.baudrate, settings.bits_per_char)
        # A pty has no line: bytes arrive at once whatever the baud rate, so there is no
        # silence to keep before a request (and a timer costs more CPU than the request).
        self._keep_silence = not is_pty(settings.port)
        self._framing = RtuFraming(max(self._quiet, SILENCE_FLOOR))
        self._lock = asyncio.Lock()
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Answer | Malformed | Failure] | None = None
        self._silence: asyncio.TimerHandle | None = None
        self._quiet_until = 0.0
        self._ended: Failure | None = None
        self._users = 0

    @classmethod
    async def open(cls, settings: SerialSettings) -> SerialBus:
        """The bus on ``settings.port``, opened now or shared with its other users."""
        loop = asyncio.get_running_loop()
        key = (id(loop), settings.port)
        bus = cls._open.get(key)
        if bus is not None and bus.usable:
            if bus.settings != settings:
                raise SerialPortError(
                    f"serial port {settings.port} is already open at {bus.settings.line}, "
                    f"not {settings.line}: the devices of one bus share its settings"
                )
            bus._users += 1
            return bus
        # pyserial only for those who use a serial port
        import serial
        import serial_asyncio_fast

        started = time.perf_counter()
        bus = cls(settings, 0.0)
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                loop, lambda: _Line(bus), settings.port, **serial_options(settings)
            )
            # A reply that waited in the port's buffer answers nobody alive.
            transport.serial.reset_input_buffer()  # type: ignore[attr-defined]
        except (serial.SerialException, OSError, ValueError, *TERMIOS_ERRORS) as exc:
            raise SerialPortError(_open_error(settings.port, exc)) from None
        bus._transport = transport
        bus.connect_ms = (time.perf_counter() - started) * 1000.0
        bus._users = 1
        cls._open[key] = bus
        return bus

    @property
    def usable(self) -> bool:
        return self._ended is None and self._transport is not None

    async def exchange(
        self, unit: int, pdu: bytes, *, timeout: float
    ) -> tuple[Answer | Failure, float]:
        """Send one request PDU to ``unit`` when the line is free; the reply and its ms."""
        entry = self.guard(pdu)
        if unit == 0:
            return _BROADCAST, 0.0
        async with self._lock:
            if self._ended is not None or self._transport is None:
                return self._ended or _TIMEOUT, 0.0
            loop = self._loop
            wait = self._quiet_until - loop.time()
            if wait > 0 and self._keep_silence:  # the silence after the last frame on it
                await asyncio.sleep(wait)
            request = self._framing.request(unit, pdu, entry)
            started = time.perf_counter()
            waiter = self._waiter = loop.create_future()
            self._transport.write(request)
            # The line is ours until the request's last bit and a silence after it; after
            # that only a reply (``_received``) can make it busy again.
            self._quiet_until = loop.time() + len(request) * self._char + self._quiet
            # The deadline counts from the request's last bit on the line.
            deadline = loop.call_later(timeout + len(request) * self._char, self._on_deadline)
            try:
                verdict = await waiter
            finally:
                deadline.cancel()
                self._cancel_silence()
                self._waiter = None
            ms = (time.perf_counter() - started) * 1000.0
        if isinstance(verdict, Malformed):
            return Failure(Cause.MALFORMED, verdict.reason, verdict.field), ms
        return verdict, ms

    def _received(self, data: bytes) -> None:
        now = self._loop.time()
        self._quiet_until = now + self._quiet
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # another master's traffic, or a reply after its deadline
        verdict = self._framing.feed(data, now)
        if verdict is not None:
            waiter.set_result(verdict)
            return
        self._cancel_silence()
        at = self._framing.deadline()
        if at is not None:
            self._silence = self._loop.call_at(at, self._on_silence)

    def _on_silence(self) -> None:
        self._silence = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            verdict = self._framing.silence(self._loop.time())
            if verdict is not None:
                waiter.set_result(verdict)

    def _cancel_silence(self) -> None:
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None

    def _on_deadline(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        _, heard = self._framing.timed_out()
        reason = f"no reply before the deadline; heard {heard}" if heard else _TIMEOUT.reason
        waiter.set_result(Failure(Cause.TIMEOUT, reason))

    def _lost(self, exc: Exception | None) -> None:
        reason = f"serial port {self.settings.port} lost: {exc or 'closed'}"
        self._ended = Failure(Cause.CLOSED, reason)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self._ended)

    def close(self) -> None:
        """Release this user's share; the port closes with its last user."""
        self._users -= 1
        if self._users > 0:
            return
        key = (id(self._loop), self.settings.port)
        if SerialBus._open.get(key) is self:  # not a newer bus opened after this one failed
            del SerialBus._open[key]
        if self._transport is not None:
            self._transport.close()
        self._ended = self._ended or Failure(Cause.CLOSED, "the serial port was closed")


def _open_error(port: str, exc: BaseException) -> str:
    number = getattr(exc, "errno", None)
    if number == errno.ENOENT or "No such file" in str(exc):
        return f"serial port {port} does not exist: check the name (ls /dev/ttyUSB* /dev/ttyACM*)"
    if number == errno.EACCES or "Permission denied" in str(exc):
        return f"serial port {port}: permission denied: add the user to the dialout group"
    if number == errno.EBUSY or "busy" in str(exc).lower():
        return f"serial port {port} is busy: another program has it open"
    return f"cannot open serial port {port}: {exc}"
