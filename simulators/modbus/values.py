"""Value generators: what a simulated point reads at a given time.

A generator is a callable ``gen(t) -> value`` where ``t`` is seconds since the device
started on the simulator's clock (injectable, so tests advance time without sleeping).
Every generator is deterministic for a given seed and sequence of ``t``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcptool.errors import UsageError

Scalar = bool | int | float | str

KINDS = ("constant", "ramp", "sine", "random_walk", "random", "counter", "sequence")


class ValueSpecError(UsageError):
    """A value generator spec with an unknown kind or a bad parameter; the message names it."""


class Generator:
    """Base of all generators; ``is_constant`` lets the device skip refreshing a point."""

    is_constant = False

    def __call__(self, t: float) -> Scalar:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class Constant(Generator):
    value: Scalar
    is_constant = True

    def __call__(self, t: float) -> Scalar:
        return self.value


@dataclass
class Ramp(Generator):
    """``start + rate * t``, wrapping from ``max`` back to ``min`` (a sawtooth) if both given."""

    start: float = 0.0
    rate: float = 1.0
    min: float | None = None
    max: float | None = None

    def __call__(self, t: float) -> Scalar:
        v = self.start + self.rate * t
        if self.min is not None and self.max is not None and self.max > self.min:
            span = self.max - self.min
            v = self.min + (v - self.min) % span
        return v


@dataclass
class Sine(Generator):
    mean: float = 0.0
    amplitude: float = 1.0
    period: float = 60.0
    phase: float = 0.0  # seconds

    def __call__(self, t: float) -> Scalar:
        return self.mean + self.amplitude * math.sin(2 * math.pi * (t + self.phase) / self.period)


@dataclass
class Counter(Generator):
    """A monotonic counter: ``start + floor(rate * t)`` (an energy meter's kWh)."""

    start: int = 0
    rate: float = 1.0  # counts per second

    def __call__(self, t: float) -> Scalar:
        return self.start + math.floor(self.rate * t)


@dataclass
class Sequence_(Generator):
    """Scripted values, one per ``interval`` seconds; repeats unless ``repeat = false``."""

    values: Sequence[Scalar]
    interval: float = 1.0
    repeat: bool = True

    def __call__(self, t: float) -> Scalar:
        i = int(t // self.interval) if t > 0 else 0
        if self.repeat:
            return self.values[i % len(self.values)]
        return self.values[min(i, len(self.values) - 1)]


@dataclass
class RandomWalk(Generator):
    """Moves by a uniform step in [-step, step] every ``interval`` seconds, kept in [min, max]."""

    start: float = 0.0
    step: float = 1.0
    interval: float = 1.0
    min: float | None = None
    max: float | None = None
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _tick: int = field(default=0, init=False, repr=False)
    _value: float = field(default=0.0, init=False, repr=False)

    # A clock jump this many ticks ahead is walked in one go, so a long pause costs nothing.
    MAX_STEPS = 10_000

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._value = self.start

    def __call__(self, t: float) -> Scalar:
        tick = int(t // self.interval) if t > 0 else 0
        steps = min(tick - self._tick, self.MAX_STEPS)
        if tick < self._tick:  # the clock went back (a test reset it): start over
            self.__post_init__()
            self._tick = 0
            steps = min(tick, self.MAX_STEPS)
        for _ in range(steps):
            v = self._value + self._rng.uniform(-self.step, self.step)
            if self.min is not None and v < self.min:
                v = 2 * self.min - v
            if self.max is not None and v > self.max:
                v = 2 * self.max - v
            self._value = v
        self._tick = tick
        return self._value


@dataclass
class Uniform(Generator):
    """A fresh uniform value in [min, max] every ``interval`` seconds (noise)."""

    min: float = 0.0
    max: float = 1.0
    interval: float = 1.0
    seed: int = 0

    def __call__(self, t: float) -> Scalar:
        tick = int(t // self.interval) if t > 0 else 0
        return random.Random(self.seed * 1_000_003 + tick).uniform(self.min, self.max)


_FACTORIES: dict[str, Callable[..., Generator]] = {
    "constant": Constant,
    "ramp": Ramp,
    "sine": Sine,
    "random_walk": RandomWalk,
    "random": Uniform,
    "counter": Counter,
    "sequence": Sequence_,
}
_PARAMS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "constant": {"value": (bool, int, float, str)},
    "ramp": {"start": (int, float), "rate": (int, float), "min": (int, float), "max": (int, float)},
    "sine": {
        "mean": (int, float),
        "amplitude": (int, float),
        "period": (int, float),
        "phase": (int, float),
    },
    "random_walk": {
        "start": (int, float),
        "step": (int, float),
        "interval": (int, float),
        "min": (int, float),
        "max": (int, float),
        "seed": int,
    },
    "random": {"min": (int, float), "max": (int, float), "interval": (int, float), "seed": int},
    "counter": {"start": int, "rate": (int, float)},
    "sequence": {"values": list, "interval": (int, float), "repeat": bool},
}
_POSITIVE = {"period", "interval"}


def make_generator(spec: Scalar | Mapping[str, Any], where: str = "value") -> Generator:
    """Build a generator from a profile's ``value``: a plain constant or ``{kind = ...}``.

    Errors name the field, e.g. ``points[2].value.period: must be > 0``.
    """
    if isinstance(spec, bool | int | float | str):
        return Constant(spec)
    if isinstance(spec, list):
        return Sequence_(list(spec)) if spec else _bad(where, "an empty list has no values")
    if not isinstance(spec, Mapping):
        raise ValueSpecError(f"{where}: expected a number, a string or a table with kind = ...")
    kind = spec.get("kind")
    if kind not in _FACTORIES:
        raise ValueSpecError(
            f'{where}.kind: unknown kind "{kind}" (one of: {", ".join(KINDS)})'
            if kind is not None
            else f"{where}.kind: missing (one of: {', '.join(KINDS)})"
        )
    params = {k: v for k, v in spec.items() if k != "kind"}
    allowed = _PARAMS[kind]
    for key, val in params.items():
        if key not in allowed:
            raise ValueSpecError(
                f'{where}.{key}: unknown parameter for kind "{kind}" (known: {", ".join(allowed)})'
            )
        if (
            isinstance(val, bool)
            and allowed[key] is not bool
            and bool not in _as_tuple(allowed[key])
        ):
            raise ValueSpecError(f"{where}.{key}: expected a number, got {val!r}")
        if not isinstance(val, allowed[key]):
            raise ValueSpecError(f"{where}.{key}: expected {_type_name(allowed[key])}, got {val!r}")
        if key in _POSITIVE and val <= 0:
            raise ValueSpecError(f"{where}.{key}: must be > 0, got {val!r}")
    if kind == "constant" and "value" not in params:
        raise ValueSpecError(f"{where}.value: missing")
    if kind == "sequence" and not params.get("values"):
        raise ValueSpecError(f"{where}.values: needs at least one value")
    return _FACTORIES[kind](**params)


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _type_name(t: type | tuple[type, ...]) -> str:
    kinds = _as_tuple(t)
    if float in kinds:
        return "a number"
    names = {"int": "an integer", "str": "a string", "bool": "true/false", "list": "a list"}
    return " or ".join(names.get(x.__name__, x.__name__) for x in kinds)


def _bad(where: str, why: str) -> Generator:
    raise ValueSpecError(f"{where}: {why}")
