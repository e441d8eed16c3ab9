"""How long to wait, in one object: the connect and the response deadline, and their defaults.

Every Modbus entry point takes its default from this module and nowhere else. They
differ by job on purpose, and the reasons are written once, here:

- ``PROBE``: one device a person is looking at; a slow serial gateway behind it gets 3 s
  to connect and 3 s to answer before it is called dead.
- ``SCAN``: a sweep over many addresses, mostly silent; every silent target costs one
  timeout, so 1 s each keeps a /24 sweep in seconds (the `scan` command's defaults).
- ``POLL``: the gateway's poll loop; a reply later than 1 s is late for a 1 s interval,
  while a connect may take the probe's 3 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from mcptool.errors import UsageError


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait for a TCP connection (``connect``) and for each reply (``response``)."""

    connect: float = 3.0
    response: float = 3.0

    def __post_init__(self) -> None:
        for name in ("connect", "response"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise UsageError(
                    f"{name} timeout {value!r} must be more than 0 seconds (a finite number)"
                )


PROBE: Final = Timeouts(connect=3.0, response=3.0)
SCAN: Final = Timeouts(connect=1.0, response=1.0)
POLL: Final = Timeouts(connect=3.0, response=1.0)
