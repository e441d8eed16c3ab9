"""The simulator on a serial line: every device on one RTU bus, a request answered by the
device that has its unit, the others silent (a serial line has no gateway to say 0x0B).

The line is a serial port opened with pyserial-asyncio-fast (one end of a ``socat`` pty
pair, or real RS-485 hardware), or a pseudo-terminal the simulator creates itself
(``"pty"``): clients open the path it prints, ``/dev/pts/N``, as they would a serial
port. Requests are cut from the line by the same ``rtu.RequestDecoder`` the framing
tests prove, relying on the line's silences; each device's replies, faults and counters
are its ``_Connection``'s, exactly as over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcptool.errors import McptoolError
from mcptool.modbus.rtu import RequestDecoder, inter_frame_delay
from mcptool.modbus.serial_line import (
    SILENCE_FLOOR,
    TERMIOS_ERRORS,
    SerialPortError,
    SerialSettings,
    serial_options,
)

if TYPE_CHECKING:
    from simulators.modbus.server import _Connection, _Listener

__all__ = ["SerialLine", "SerialSettings"]

PTY = "pty"


class SerialLine(asyncio.Protocol):
    """One serial line and the devices on it."""

    def __init__(
        self, settings: SerialSettings, devices: Sequence[tuple[_Listener, _Connection]]
    ) -> None:
        self.settings = settings
        self.path = settings.port
        gap = max(inter_frame_delay(settings.baudrate, settings.bits_per_char), SILENCE_FLOOR)
        self.requests = RequestDecoder(gap)
        self.by_unit: dict[int, _Connection] = {}
        self.any_unit: _Connection | None = None
        for listener, conn in devices:
            if listener.profile.answer_all_units:
                self.any_unit = self.any_unit or conn
            for unit in listener.profile.all_units():
                if unit.id in self.by_unit:
                    raise McptoolError(
                        f"unit {unit.id} is on the serial line twice ({listener.profile.name} "
                        "and another device): devices on one bus need different units"
                    )
                self.by_unit[unit.id] = conn
        self.connections = [conn for _, conn in devices]
        self.transport: asyncio.BaseTransport | None = None
        self._silence: asyncio.TimerHandle | None = None
        self._pty: tuple[int, int] | None = None

    @classmethod
    async def open(
        cls, serial: SerialSettings | str, devices: Sequence[tuple[_Listener, _Connection]]
    ) -> SerialLine:
        loop = asyncio.get_running_loop()
        if serial == PTY or (isinstance(serial, SerialSettings) and serial.port == PTY):
            import tty  # POSIX only, as pseudo-terminals are

            base = serial if isinstance(serial, SerialSettings) else SerialSettings(PTY)
            master, slave = os.openpty()
            tty.setraw(slave)  # bytes as they are: no echo, no CR/LF translation
            settings = SerialSettings(
                os.ttyname(slave), base.baudrate, base.parity, base.stopbits, base.bytesize
            )
            line = cls(settings, devices)
            line._pty = (master, slave)
            os.set_blocking(master, False)
            line._attach(_PtyTransport(master))
            loop.add_reader(master, line._read_pty)
            return line
        assert isinstance(serial, SerialSettings)
        import serial as pyserial
        import serial_asyncio_fast

        line = cls(serial, devices)
        try:
            await serial_asyncio_fast.create_serial_connection(
                loop,
                lambda: line,
                serial.port,
                **serial_options(serial),
            )
        except (pyserial.SerialException, OSError, ValueError, *TERMIOS_ERRORS) as exc:
            raise SerialPortError(f"cannot open serial port {serial.port}: {exc}") from None
        return line

    def _attach(self, transport: Any) -> None:
        self.transport = transport
        for conn in self.connections:
            conn.connection_made(transport)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._attach(transport)

    def _read_pty(self) -> None:
        assert self._pty is not None
        try:
            data = os.read(self._pty[0], 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO: no client has the pty open right now; it may open it later
        if data:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.requests.feed(data, loop.time())
        self._dispatch()
        if self._silence is not None:
            self._silence.cancel()
        at = self.requests.deadline()
        self._silence = loop.call_at(at, self._on_silence) if at is not None else None

    def _on_silence(self) -> None:
        self._silence = None
        self.requests.silence(asyncio.get_running_loop().time())
        self._dispatch()

    def _dispatch(self) -> None:
        for unit, pdu in self.requests.requests():
            if unit == 0:  # broadcast: every device acts, none answers
                for conn in self.connections:
                    conn.device.handle(0, pdu)
                continue
            conn = self.by_unit.get(unit) or self.any_unit
            if conn is not None and not conn.closed:
                conn._request(0, unit, pdu)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def close(self) -> None:
        if self._silence is not None:
            self._silence.cancel()
        if self._pty is not None:
            master, slave = self._pty
            asyncio.get_running_loop().remove_reader(master)
            for fd in (master, slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._pty = None
        elif self.transport is not None:
            self.transport.close()
        for conn in self.connections:
            conn.closed = True


class _PtyTransport(asyncio.Transport):
    """Writes to a pty master; a frame nobody reads is lost, as on a real line."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def write(self, data: bytes | bytearray | memoryview) -> None:
        with contextlib.suppress(OSError):
            os.write(self._fd, data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass
