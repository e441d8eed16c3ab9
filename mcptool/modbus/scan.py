"""scan: probes over many targets and unit ids, politely and as fast as the limits allow.

Each target (address and port) gets one connection for its whole unit-id sweep; a new
connection is opened only when the peer closed the old one. Limits, all in one place:
how many connections are open at once (``concurrency``), how many to one host at once
(``per_host``, default 1: many PLCs serve only a few connections), and how many new
connections start per second (``rate``). Retries happen only when asked for.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from mcptool.errors import UsageError
from mcptool.modbus.connection import Failure, ModbusConnection, Outcome
from mcptool.modbus.identify import identify
from mcptool.modbus.pdu import MalformedField, ProbeRequest
from mcptool.modbus.probe import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    ProbeResult,
    failure_result,
    read_unit,
)
from mcptool.modbus.targets import Target

#: Outcomes worth another attempt when retries are asked for: the peer may be busy.
RETRYABLE = frozenset(
    {Outcome.TIMEOUT, Outcome.UNREACHABLE, Outcome.CLOSED, Outcome.RESET, Outcome.REFUSED}
)

_STALE_CONNECTION = frozenset({Outcome.CLOSED, Outcome.RESET})


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """How to scan: what to read, how long to wait, how hard to push."""

    units: Sequence[int] = (1,)
    request: ProbeRequest = field(default_factory=ProbeRequest)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    timeout: float = DEFAULT_TIMEOUT
    identify: bool = False
    concurrency: int = 64
    per_host: int = 1
    rate: float = 0.0  # new connections per second; 0 means no limit
    retries: int = 0

    def __post_init__(self) -> None:
        if not self.units:
            raise UsageError("no unit ids to scan: give e.g. --units 1-247")
        if self.concurrency < 1:
            raise UsageError(f"concurrency {self.concurrency} must be at least 1")
        if self.per_host < 1:
            raise UsageError(f"per-host limit {self.per_host} must be at least 1")
        if self.rate < 0:
            raise UsageError(f"rate {self.rate} must be 0 (no limit) or more connections/s")
        if self.retries < 0:
            raise UsageError(f"retries {self.retries} must be 0 or more")
        for name in ("connect_timeout", "timeout"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name.replace('_', ' ')} must be more than 0 seconds")


class RateLimiter:
    """At most ``rate`` starts per second, spaced evenly (no bursts at second boundaries)."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()
        self._clock = clock
        self._sleep = sleep

    async def acquire(self) -> None:
        if not self._interval:
            return
        async with self._lock:
            now = self._clock()
            wait = self._next - now
            self._next = max(now, self._next) + self._interval
            if wait > 0:
                await self._sleep(wait)


@dataclass
class ScanSummary:
    """Counts for the end of a scan."""

    targets: int = 0
    probes: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    devices: int = 0  # (target, unit) pairs whose device answered Modbus
    hosts_answering: int = 0  # targets with at least one answering unit
    connections: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items()))
        return (
            f"{self.devices} device(s) answered on {self.hosts_answering} of {self.targets} "
            f"target(s); {self.probes} probe(s) ({counts}) in {self.seconds:.2f} s"
        )


class Scanner:
    """Runs one scan; results arrive through ``results()`` as they are known."""

    def __init__(
        self,
        targets: Sequence[Target],
        options: ScanOptions,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.targets = targets
        self.options = options
        self.summary = ScanSummary(targets=len(targets))
        self._on_progress = on_progress
        self._rate = RateLimiter(options.rate)
        self._hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(options.per_host)
        )

    @property
    def total_probes(self) -> int:
        return len(self.targets) * len(self.options.units)

    async def results(self) -> AsyncIterator[ProbeResult]:
        """Every probe result, in the order they finish."""
        started = time.perf_counter()
        queue: asyncio.Queue[ProbeResult | None] = asyncio.Queue()
        pending = iter(_interleave_hosts(self.targets))
        workers = min(self.options.concurrency, len(self.targets))

        async def worker() -> None:
            try:
                for target in pending:
                    async with self._hosts[target.address]:
                        await self._sweep(target, queue)
            finally:
                queue.put_nowait(None)  # even after a bug, so the consumer never hangs

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        try:
            done = 0
            while done < workers:
                item = await queue.get()
                if item is None:
                    done += 1
                    continue
                self._count(item)
                yield item
            for task in tasks:
                task.result()  # surface a bug in a worker instead of losing it
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.summary.seconds = time.perf_counter() - started

    def _count(self, result: ProbeResult) -> None:
        self.summary.outcomes[result.outcome.value] += 1
        self.summary.probes += 1
        if result.answered:
            self.summary.devices += 1

    async def _connect(self, target: Target) -> ModbusConnection | Failure:
        await self._rate.acquire()
        self.summary.connections += 1
        return await ModbusConnection.open(
            target.address, target.port, connect_timeout=self.options.connect_timeout
        )

    async def _sweep(self, target: Target, queue: asyncio.Queue[ProbeResult | None]) -> None:
        options = self.options
        units = options.units
        connection: ModbusConnection | None = None
        answered = False
        try:
            for index, unit in enumerate(units):
                result: ProbeResult | None = None
                attempt = 0
                redone = False
                while True:
                    fresh = connection is None or not connection.usable
                    if fresh:
                        if connection is not None:
                            connection.close()
                        opened = await self._connect(target)
                        if isinstance(opened, Failure):
                            connection = None
                            left = len(units) - index
                            result = self._connect_failure(target, unit, opened, left)
                            if attempt < options.retries and opened.outcome in RETRYABLE:
                                attempt += 1
                                continue
                            break
                        connection = opened
                    assert connection is not None
                    result = await read_unit(
                        connection,
                        target.address,
                        target.port,
                        unit,
                        options.request,
                        timeout=options.timeout,
                        connect_ms=connection.connect_ms,
                    )
                    if not fresh and not redone and result.outcome in _STALE_CONNECTION:
                        # The peer closed the kept connection just as this request went
                        # out (devices that close after each reply): a read is safe to
                        # send again, once, on a fresh connection. Not a user retry.
                        redone = True
                        connection.close()
                        continue
                    if result.outcome not in RETRYABLE or attempt >= options.retries:
                        break
                    attempt += 1
                assert result is not None
                if connection is None:  # could not connect: the rest of the sweep is moot
                    await queue.put(_named(result, target))
                    self._progress(len(units) - index)
                    return
                if options.identify and result.answered:
                    identity = await identify(connection, unit, timeout=options.timeout)
                    result = replace(result, identity=identity)
                answered = answered or result.answered
                await queue.put(_named(result, target))
                self._progress(1)
                if result.malformed is MalformedField.PROTOCOL_ID:
                    # Not Modbus at all: more unit ids would only repeat the answer.
                    self._progress(len(units) - index - 1)
                    return
        finally:
            if connection is not None:
                connection.close()
            if answered:
                self.summary.hosts_answering += 1

    def _connect_failure(
        self, target: Target, unit: int, failure: Failure, left: int
    ) -> ProbeResult:
        # One row for a target that cannot be reached, not one per unit id.
        sweep = len(self.options.units) > 1
        reason = failure.reason
        if sweep and left > 1:
            reason += f" ({left} unit ids not probed)"
        return failure_result(
            target.address,
            target.port,
            None if sweep else unit,
            self.options.request,
            Failure(failure.outcome, reason, failure.malformed),
        )

    def _progress(self, probes: int) -> None:
        if self._on_progress is not None and probes > 0:
            self._on_progress(probes)


def _named(result: ProbeResult, target: Target) -> ProbeResult:
    return result if target.name is None else replace(result, name=target.name)


def _interleave_hosts(targets: Sequence[Target]) -> list[Target]:
    # Round-robin over hosts so that workers do not queue behind one busy host while
    # others sit idle (ports of one host would otherwise come one after another).
    by_host: dict[str, list[Target]] = {}
    for target in targets:
        by_host.setdefault(target.address, []).append(target)
    if len(by_host) in (1, len(targets)):
        return list(targets)
    ordered: list[Target] = []
    columns = list(by_host.values())
    for i in range(max(len(c) for c in columns)):
        ordered.extend(c[i] for c in columns if i < len(c))
    return ordered


async def scan(
    targets: Sequence[Target], options: ScanOptions | None = None
) -> AsyncIterator[ProbeResult]:
    """Scan ``targets`` and yield each probe result as soon as it is known."""
    scanner = Scanner(targets, options or ScanOptions())
    async for result in scanner.results():
        yield result
