"""Value generators: deterministic functions of time (and a seed)."""

from __future__ import annotations

import pytest

from simulators.modbus import ValueSpecError, make_generator


def test_constant_and_plain_values() -> None:
    assert make_generator(4.5)(100) == 4.5
    assert make_generator({"kind": "constant", "value": "on"})(3) == "on"


def test_ramp_rises_and_wraps_between_min_and_max() -> None:
    ramp = make_generator({"kind": "ramp", "start": 10, "rate": 2, "min": 10, "max": 20})
    assert [ramp(t) for t in (0, 2, 4.5, 5, 6)] == [10, 14, 19, 10, 12]


def test_sine_follows_mean_amplitude_period_and_phase() -> None:
    sine = make_generator({"kind": "sine", "mean": 50, "amplitude": 10, "period": 4})
    assert [round(sine(t), 9) for t in (0, 1, 2, 3)] == [50, 60, 50, 40]
    shifted = make_generator({"kind": "sine", "amplitude": 1, "period": 4, "phase": 1})
    assert shifted(0) == pytest.approx(1)


def test_counter_counts_whole_units_at_its_rate() -> None:
    counter = make_generator({"kind": "counter", "start": 100, "rate": 2.5})
    assert [counter(t) for t in (0, 0.3, 1, 10)] == [100, 100, 102, 125]


def test_sequence_steps_per_interval_and_repeats_or_holds() -> None:
    seq = make_generator({"kind": "sequence", "values": [1, 2, 3], "interval": 2})
    assert [seq(t) for t in (0, 1.9, 2, 4, 6)] == [1, 1, 2, 3, 1]
    once = make_generator({"kind": "sequence", "values": [1, 2], "repeat": False})
    assert once(10) == 2
    assert make_generator([True, False])(1) is False


def test_random_walk_is_seeded_bounded_and_independent_of_how_often_it_is_read() -> None:
    spec = {"kind": "random_walk", "start": 5, "step": 1, "min": 0, "max": 10, "seed": 9}
    often, seldom = make_generator(spec), make_generator(spec)
    trace = [often(t) for t in range(200)]
    assert seldom(199) == trace[-1]
    assert all(0 <= v <= 10 for v in trace)
    assert len(set(trace)) > 50


def test_random_is_seeded_and_in_range() -> None:
    a = make_generator({"kind": "random", "min": 1, "max": 2, "seed": 1})
    b = make_generator({"kind": "random", "min": 1, "max": 2, "seed": 1})
    assert [a(t) for t in range(20)] == [b(t) for t in range(20)]
    assert all(1 <= a(t) <= 2 for t in range(20))
    assert a(0.5) == a(0.9)  # one value per interval


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "wave"}, 'value.kind: unknown kind "wave"'),
        ({"rate": 1}, "value.kind: missing"),
        ({"kind": "ramp", "speed": 1}, 'value.speed: unknown parameter for kind "ramp"'),
        ({"kind": "ramp", "rate": "fast"}, "value.rate: expected a number"),
        ({"kind": "sine", "amplitude": True}, "value.amplitude: expected a number"),
        ({"kind": "sequence", "values": []}, "value.values: needs at least one value"),
        ({"kind": "constant"}, "value.value: missing"),
        ([], "value: an empty list"),
    ],
)
def test_bad_specs_name_the_parameter(spec: object, message: str) -> None:
    with pytest.raises(ValueSpecError) as caught:
        make_generator(spec)  # type: ignore[arg-type]
    assert message in str(caught.value)
