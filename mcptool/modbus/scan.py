"""scan: probes over many targets and unit ids, politely and as fast as the limits allow.

Each target (address and port) gets one connection for its whole unit-id sweep; a new
connection is opened only when the peer closed the old one. When ``per_host`` allows
more than one connection to a host, a sweep is shared by up to that many connections
("lanes"), each taking the next unit id as it finishes one, so silent unit ids cost
their timeout in parallel. Limits, all in one place: how many connections are open at
once (``concurrency``), how many to one host at once (``per_host``, default 1: many PLCs
serve only a few connections), and how many new connections start per second
(``rate``). Retries happen only when asked for.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from mcptool.errors import UsageError
from mcptool.modbus.connection import Failure, ModbusConnection, Outcome
from mcptool.modbus.identify import identify
from mcptool.modbus.mbap import MalformedField
from mcptool.modbus.pdu import ProbeRequest
from mcptool.modbus.probe import Link, ProbeResult, failure_result, read_unit
from mcptool.modbus.serial_line import SerialBus
from mcptool.modbus.targets import Target
from mcptool.modbus.timeouts import SCAN, Timeouts

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
    connect_timeout: float = SCAN.connect
    timeout: float = SCAN.response
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
        Timeouts(connect=self.connect_timeout, response=self.timeout)  # the one rule


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


class _Sweep:
    """One target's unit-id sweep, shared by the lanes (connections) working on it.

    The first lane connects alone; the others are queued, ahead of targets not yet
    started, only once it has connected, so a target that refuses or cannot be reached
    costs one connect and gets one row, and no slot waits on it. A lane whose new
    connection is refused, or closed or reset before any reply, while another lane of
    the target is working hands its unit id back and retires: a device with fewer
    connection slots than ``per_host`` is swept over the connections it allows, and no
    unit is reported closed because the device was busy with our other connections.
    """

    def __init__(self, target: Target, units: Sequence[int]) -> None:
        self.target = target
        self.lanes = 1  # lanes queued or running
        self.working = 0  # lanes past their first connect and not yet finished
        self.answered = False
        self.failure: tuple[int, Failure] | None = None  # why the target is unreachable
        self.not_probed = 0
        self._units: Iterator[int] = iter(units)
        self._returned: list[int] = []
        self._stopped = False

    def next_unit(self) -> int | None:
        if self._stopped:
            return None
        if self._returned:
            return self._returned.pop()
        return next(self._units, None)

    def give_back(self, unit: int) -> None:
        self._returned.append(unit)

    def stop(self) -> int:
        """No more unit ids for any lane; returns how many were never taken."""
        self._stopped = True
        left = len(self._returned) + sum(1 for _ in self._units)
        self._returned.clear()
        return left


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
        # Lanes to run: (priority, order, sweep, first lane); a None sweep stops a worker.
        self._work: asyncio.PriorityQueue[tuple[int, int, _Sweep | None, bool]] = (
            asyncio.PriorityQueue()
        )
        self._order = itertools.count()
        self._workers = 0
        self._unfinished = 0
        # Connections one target's sweep may use at once (see _Sweep).
        self._lanes_per_target = min(options.per_host, len(options.units))

    @property
    def total_probes(self) -> int:
        return len(self.targets) * len(self.options.units)

    async def results(self) -> AsyncIterator[ProbeResult]:
        """Every probe result, in the order they finish."""
        started = time.perf_counter()
        queue: asyncio.Queue[ProbeResult | None] = asyncio.Queue()
        workers = min(self.options.concurrency, len(self.targets) * self._lanes_per_target)
        self._workers = workers
        self._unfinished = len(self.targets)
        for target in _interleave_hosts(self.targets):
            self._queue_lane(_Sweep(target, self.options.units), first=True)
        if not self.targets:
            self._finish_work()

        async def worker() -> None:
            try:
                while (item := await self._work.get())[2] is not None:
                    _, _, sweep, first = item
                    async with self._hosts[sweep.target.address]:
                        await self._lane(sweep, first, queue)
            except BaseException:
                self._finish_work()  # the others stop too, so the bug surfaces below
                raise
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

    async def _connect(self, target: Target) -> Link | Failure:
        await self._rate.acquire()
        self.summary.connections += 1
        if target.serial is not None:  # a bus: its units are swept one request at a time
            return await SerialBus.open(target.serial)
        return await ModbusConnection.open(
            target.address,
            target.port,
            connect_timeout=self.options.connect_timeout,
            framing=target.framing,
        )

    def _queue_lane(self, sweep: _Sweep, *, first: bool) -> None:
        # Extra lanes go ahead of targets not yet started: a sweep under way finishes
        # sooner, and its connections are known to work.
        self._work.put_nowait((1 if first else 0, next(self._order), sweep, first))

    def _finish_work(self) -> None:
        for _ in range(self._workers):
            self._work.put_nowait((2, next(self._order), None, False))

    async def _lane(
        self, sweep: _Sweep, first: bool, queue: asyncio.Queue[ProbeResult | None]
    ) -> None:
        options = self.options
        target = sweep.target
        connection: Link | None = None
        working = False
        try:
            while (unit := sweep.next_unit()) is not None:
                result: ProbeResult | None = None
                failure: Failure | None = None
                attempt = 0
                redone = False
                while True:
                    fresh = connection is None or not connection.usable
                    if fresh:
                        if connection is not None:
                            connection.close()
                        opened = await self._connect(target)
                        if isinstance(opened, Failure):
                            connection, failure = None, opened
                            if attempt < options.retries and opened.outcome in RETRYABLE:
                                attempt += 1
                                continue
                            break
                        connection, failure = opened, None
                        if not working:
                            working = True
                            sweep.working += 1
                            if first:  # the target takes connections: open the lanes
                                for _ in range(self._lanes_per_target - 1):
                                    sweep.lanes += 1
                                    self._queue_lane(sweep, first=False)
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
                    if fresh and result.outcome in _STALE_CONNECTION and sweep.working > 1:
                        # A new connection dropped before a reply while other lanes of
                        # this target work: the device is out of connection slots.
                        sweep.give_back(unit)
                        return
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
                if failure is not None:
                    if sweep.working > (1 if working else 0):
                        # Another lane is connected: this one is over the device's
                        # connection limit, not looking at a dead target.
                        sweep.give_back(unit)
                        return
                    # The target cannot be reached: the rest of the sweep is moot.
                    left = 1 + sweep.stop()
                    sweep.not_probed += left
                    if sweep.failure is None:
                        sweep.failure = (unit, failure)
                    self._progress(left)
                    return
                assert connection is not None and result is not None
                if options.identify and result.answered:
                    identity = await identify(connection, unit, timeout=options.timeout)
                    result = replace(result, identity=identity)
                sweep.answered = sweep.answered or result.answered
                await queue.put(_named(result, target))
                self._progress(1)
                if result.malformed is MalformedField.PROTOCOL_ID:
                    # Not Modbus at all: more unit ids would only repeat the answer.
                    self._progress(sweep.stop())
                    return
        finally:
            if connection is not None:
                connection.close()
            if working:
                sweep.working -= 1
            sweep.lanes -= 1
            if sweep.lanes == 0:
                self._sweep_done(sweep, queue)

    def _sweep_done(self, sweep: _Sweep, queue: asyncio.Queue[ProbeResult | None]) -> None:
        if sweep.answered:
            self.summary.hosts_answering += 1
        if sweep.failure is not None:
            unit, failure = sweep.failure
            row = self._connect_failure(sweep.target, unit, failure, sweep.not_probed)
            queue.put_nowait(_named(row, sweep.target))
        self._unfinished -= 1
        if self._unfinished == 0:
            self._finish_work()

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
            replace(failure, reason=reason),
        )

    def _progress(self, probes: int) -> None:
        if self._on_progress is not None and probes > 0:
            self._on_progress(probes)


def _named(result: ProbeResult, target: Target) -> ProbeResult:
    if target.name is None and target.framing is result.framing:
        return result
    return replace(result, name=target.name, framing=target.framing)


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
