"""The pump signal model: deterministic by seed, non-IID across devices, physically plausible."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from device_sim.pump import (
    CHANNELS,
    CHUNK,
    CURRENT,
    FLOW,
    PRESSURE,
    TEMPERATURE,
    VIBRATION,
    VOLTAGE,
    PumpModel,
)


def _readings(model: PumpModel, chunks: int) -> NDArray[np.float32]:
    return np.concatenate([model.chunk(k) for k in range(chunks)])


def test_same_seed_gives_identical_readings() -> None:
    """Two models built from the same (seed, node, device, rate) produce the same bits."""
    a, b = PumpModel(7, 1, 2, 100.0), PumpModel(7, 1, 2, 100.0)

    first, second = a.chunk(3), b.chunk(3)

    assert first.dtype == np.float32
    assert first.shape == (CHUNK, len(CHANNELS))
    assert np.array_equal(first, second)


def test_other_seed_or_device_gives_other_readings() -> None:
    """Changing the seed, the node or the device changes the data."""
    base = PumpModel(7, 1, 2, 100.0).chunk(0)

    others = [PumpModel(*args, 100.0).chunk(0) for args in ((8, 1, 2), (7, 0, 2), (7, 1, 3))]

    assert all(not np.allclose(base, other) for other in others)


def test_chunks_are_independent_of_generation_order() -> None:
    """A chunk generated alone equals the same chunk generated after all the earlier ones."""
    model = PumpModel(3, 0, 0, 50.0)

    in_order = [model.chunk(k) for k in range(5)]
    alone = PumpModel(3, 0, 0, 50.0).chunk(4)

    assert np.array_equal(in_order[4], alone)


def test_operating_points_differ_across_devices_and_nodes() -> None:
    """Each device has its own operating point: channel means differ well beyond the noise."""
    means = np.array(
        [
            _readings(PumpModel(0, node, device, 10.0), 2).mean(axis=0)
            for node in range(3)
            for device in range(3)
        ]
    )

    spread = means.std(axis=0) / means.mean(axis=0)
    assert (spread[[VIBRATION, CURRENT, PRESSURE, FLOW]] > 0.1).all()
    assert spread[TEMPERATURE] > 0.02
    assert len({round(float(m), 3) for m in means[:, CURRENT]}) == 9


def test_load_drives_correlated_channels() -> None:
    """Current, flow and pressure rise and fall together; voltage sags as current rises."""
    readings = _readings(PumpModel(1, 0, 0, 1.0), 40)  # 11 h of data at 1 Hz

    corr = np.asarray(np.corrcoef(readings.T))

    assert corr[CURRENT, FLOW] > 0.9
    assert corr[CURRENT, PRESSURE] > 0.9
    assert corr[VIBRATION, FLOW] > 0.3
    assert corr[VOLTAGE, CURRENT] < -0.5


def test_temperature_lags_load() -> None:
    """Temperature follows flow (load) with a delay: it correlates best with past flow."""
    readings = _readings(PumpModel(2, 0, 0, 1.0), 40).astype(np.float64)
    flow, temperature = readings[:, FLOW], readings[:, TEMPERATURE]

    def corr_at(lag: int) -> float:
        return float(np.corrcoef(flow[: len(flow) - lag], temperature[lag:])[0, 1])

    assert corr_at(300) > corr_at(0)


def test_readings_are_finite_and_physical() -> None:
    """Every channel stays finite and positive; voltage stays within a few percent of nominal."""
    readings = _readings(PumpModel(4, 2, 1, 1000.0), 20)

    assert np.isfinite(readings).all()
    assert (readings > 0).all()
    voltage = readings[:, VOLTAGE]
    assert voltage.std() / voltage.mean() < 0.02
