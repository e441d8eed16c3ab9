"""The Modbus simulator on its own event loop in a thread, for tests that run the CLI.

``mcptool read``/``write``/``capture`` call ``asyncio.run`` themselves, so the device they
talk to must live on another loop: this one, on 127.0.0.1 and an ephemeral port.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager

from mcptool.modbus.serial_line import SerialSettings
from simulators.modbus.profile import DeviceProfile
from simulators.modbus.server import ModbusSimulator


@contextmanager
def simulator_thread(
    profile: DeviceProfile,
    clock: Callable[[], float] | None = None,
    *,
    framing: str = "tcp",
    serial: SerialSettings | None = None,
) -> Iterator[ModbusSimulator]:
    """A started simulator serving ``profile``; ``clock`` pins its generators' time;
    ``framing="rtu"`` (RTU over TCP) and ``serial`` (a serial line) as the simulator takes
    them."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    kwargs = {} if clock is None else {"clock": clock}
    simulator = ModbusSimulator(profile, framing=framing, serial=serial, **kwargs)
    started: Future[ModbusSimulator] = asyncio.run_coroutine_threadsafe(simulator.start(), loop)
    try:
        yield started.result(timeout=10)
    finally:
        asyncio.run_coroutine_threadsafe(simulator.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
