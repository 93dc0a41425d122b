"""Injected anomalies and drift: they change the signal where, and only where, scheduled."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from device_sim.behaviour import (
    ANOMALY_COLUMN,
    DEFAULT_CHANNELS,
    DRIFT_COLUMN,
    Anomaly,
    Behaviour,
    DeviceSchedule,
    Drift,
    Kind,
    matches,
)
from device_sim.fleet import DeviceSignal
from device_sim.pump import CHANNELS, CHUNK, PRESSURE, TEMPERATURE, PumpModel
from fedge.errors import ConfigError

RATE = 100.0
START, STOP = 1000, 1100  # at=10 s for 1 s at 100 Hz: crosses the chunk boundary at 1024


def _run(*behaviours: Behaviour, chunks: int = 3) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    model = PumpModel(5, 0, 0, RATE)
    schedule = DeviceSchedule(
        behaviours, seed=5, node=(0, "node-0"), device=(0, "pump-0"), rate=RATE
    )
    signal = DeviceSignal(model, schedule)
    parts = [signal.chunk(k) for k in range(chunks)]
    return np.concatenate([v for v, _ in parts]), np.concatenate([lab for _, lab in parts])


def _window(n: int, start: int = START, stop: int = STOP) -> NDArray[np.bool_]:
    index = np.arange(n)
    return (index >= start) & (index < stop)


@pytest.mark.parametrize("kind", list(Kind))
def test_anomaly_changes_and_labels_exactly_its_window(kind: Kind) -> None:
    """Each kind alters only its channels, only inside its window, and labels those readings."""
    clean, _ = _run()
    anomaly = Anomaly(kind, at_s=10.0, for_s=1.0)

    values, labels = _run(anomaly)

    changed = values != clean
    window = _window(len(values))
    affected = [CHANNELS.index(c) for c in DEFAULT_CHANNELS[kind]]
    untouched = [i for i in range(len(CHANNELS)) if i not in affected]
    assert np.array_equal(changed.any(axis=1), window)
    assert not changed[:, untouched].any()
    assert np.array_equal(labels[:, ANOMALY_COLUMN], np.where(window, kind.value, 0))
    assert not labels[:, DRIFT_COLUMN].any()


def test_stuck_sensor_holds_the_reading_before_its_window() -> None:
    """A stuck sensor repeats the last value it read, across a chunk boundary."""
    clean, _ = _run()

    values, _ = _run(Anomaly(Kind.STUCK, at_s=10.0, for_s=1.0, channels=("pressure",)))

    assert (values[START:STOP, PRESSURE] == clean[START - 1, PRESSURE]).all()


def test_dropout_reads_zero_on_every_channel() -> None:
    """A dropout reads 0.0 (never NaN, which the wire refuses) on all channels by default."""
    values, _ = _run(Anomaly(Kind.DROPOUT, at_s=10.0, for_s=1.0))

    assert (values[START:STOP] == 0.0).all()
    assert (values[STOP:] != 0.0).all()


def test_spike_defaults_to_one_reading_and_ramp_rises() -> None:
    """A spike without a duration hits one reading; a ramp's offset grows across its window."""
    clean, _ = _run()

    _, spike_labels = _run(Anomaly(Kind.SPIKE, at_s=10.0))
    ramped, _ = _run(Anomaly(Kind.RAMP, at_s=10.0, for_s=1.0, channels=("temperature",)))

    assert np.flatnonzero(spike_labels[:, ANOMALY_COLUMN]).tolist() == [START]
    offset = (ramped - clean)[START:STOP, TEMPERATURE]
    assert (np.diff(offset) > 0).mean() > 0.9
    assert offset[-1] > 10 * offset[0] > 0


def test_drift_is_sustained_after_its_transition() -> None:
    """A +25 % drift holds for the rest of the run and is labelled only while it sets in."""
    clean, _ = _run(chunks=40)
    drift = Drift(at_s=10.0, channels=("pressure",), scale=1.25, over_s=1.0)

    values, labels = _run(drift, chunks=40)

    ratio = values[:, PRESSURE] / clean[:, PRESSURE]
    assert np.allclose(ratio[:START], 1.0)
    assert np.allclose(ratio[STOP:], 1.25, rtol=1e-6)
    assert ratio[START + 50] == pytest.approx(1.0 + 0.25 * 51 / 100, rel=1e-6)
    assert len(values) > 30 * CHUNK
    assert np.array_equal(labels[:, DRIFT_COLUMN], _window(len(values)).astype(np.uint8))
    assert not labels[:, ANOMALY_COLUMN].any()


def test_shift_drift_adds_a_fraction_of_the_level() -> None:
    """shift=-0.1 lowers the channel by 10 % of its level from the drift on."""
    clean, _ = _run()
    level = PumpModel(5, 0, 0, RATE).levels[TEMPERATURE]

    values, _ = _run(Drift(at_s=10.0, channels=("temperature",), shift=-0.1))

    delta = (values - clean)[:, TEMPERATURE]
    assert np.allclose(delta[START:], -0.1 * level, atol=1e-3)
    assert (delta[:START] == 0).all()


def test_overlapping_anomalies_label_the_later_one() -> None:
    """Where two anomalies overlap, the one scheduled later owns the label."""
    _, labels = _run(
        Anomaly(Kind.STEP, at_s=10.0, for_s=1.0), Anomaly(Kind.NOISE, at_s=10.5, for_s=1.0)
    )

    column = labels[:, ANOMALY_COLUMN]
    assert (column[1000:1050] == Kind.STEP).all()
    assert (column[1050:1150] == Kind.NOISE).all()


def test_behaviour_applies_only_to_its_target_devices() -> None:
    """A behaviour aimed at another device leaves this one untouched."""
    clean, _ = _run()

    values, labels = _run(Anomaly(Kind.SPIKE, at_s=10.0, target="node-1/pump-0"))

    assert np.array_equal(values, clean)
    assert not labels.any()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("*", True),
        ("node-3/pump-1", True),
        ("node-3/*", True),
        ("*/pump-1", True),
        ("pump-1", True),
        ("pump-?", True),
        ("node-4/pump-1", False),
        ("pump-2", False),
    ],
)
def test_target_patterns(target: str, expected: bool) -> None:
    """Targets select NODE/DEVICE, every node's DEVICE, or all, with shell globs."""
    assert matches(target, "node-3", "pump-1") is expected


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: Anomaly(Kind.SPIKE, at_s=-1.0), "at"),
        (lambda: Anomaly(Kind.STEP, at_s=0.0, for_s=0.0), "for"),
        (lambda: Anomaly(Kind.STEP, at_s=0.0, channels=("rpm",)), "channel"),
        (lambda: Anomaly(Kind.STEP, at_s=0.0, magnitude=1e9), "magnitude"),
        (lambda: Anomaly(Kind.STUCK, at_s=0.0, magnitude=1.0), "magnitude"),
        (lambda: Anomaly(Kind.STEP, at_s=0.0, target="a/b/c"), "device"),
        (lambda: Drift(at_s=0.0, channels=("flow",)), "scale"),
        (lambda: Drift(at_s=0.0, channels=("flow",), scale=float("nan")), "scale"),
    ],
)
def test_invalid_behaviour_is_a_config_error_naming_the_field(
    make: Callable[[], Behaviour], key: str
) -> None:
    """Bad times, channels, magnitudes and targets are ConfigErrors keyed by the field."""
    with pytest.raises(ConfigError) as caught:
        make()

    assert caught.value.key == key
