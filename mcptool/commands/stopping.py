"""How a long-running command stops: at SIGINT (Ctrl-C) or SIGTERM, or after a duration.

The handlers are the event loop's rather than Python's KeyboardInterrupt, so that
SIGTERM (systemd, ``docker stop``, ``kill``) shuts down as cleanly as Ctrl-C, with exit
status 0, and so that a SIGINT disposition inherited as ignored (a background job of a
non-interactive shell, a test runner started that way) does not leave the command
deaf to the signal its help names.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

__all__ = ["stop_event", "until_stopped"]


def stop_event() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets; call it before saying "Ctrl-C to stop"."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # not available off the main thread or on Windows: Ctrl-C then raises
        # KeyboardInterrupt as usual
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def until_stopped(stop: asyncio.Event, duration: float | None = None) -> bool:
    """Wait for ``stop`` or ``duration`` seconds; True when a signal stopped it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)
    return stop.is_set()
