"""The drift trigger: sustained shifts fire it once; bursts, cooldown and the cap hold it back."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge_node.state import Normalisation
from edge_node.trigger import DriftTrigger, Firing, TriggerConfig

CHANNELS = ("vibration", "current", "pressure")
BASE = Normalisation(np.array([1.0, 10.0, 5.0], np.float32), np.array([0.1, 1.0, 0.5], np.float32))
CONFIG = TriggerConfig(window_s=60.0, sustain_s=180.0, cooldown_s=600.0, max_per_day=2)


def _run(
    trigger: DriftTrigger,
    seconds: int,
    *,
    start: int = 0,
    level: tuple[float, float, float] = (1.0, 1.0, 1.0),
    scale: float = 1.0,
    burst: range = range(0),
    above: int = 0,
) -> list[Firing]:
    """Feed one 1-s frame of 10 readings per second; return the firings seen."""
    rng = np.random.default_rng(start)
    firings = []
    for second in range(start, start + seconds):
        noise = rng.standard_normal((10, 3)) * BASE.std * scale
        values = (BASE.mean * np.array(level) + noise).astype(np.float32)
        if second in burst:
            values[:, 0] += 50.0
        times = second + np.arange(10) / 10.0
        trigger.observe_readings("pump", times, values)
        trigger.observe_scores("pump", float(times[-1]), above, 10)
        firing = trigger.check("pump", float(times[-1]))
        if firing is not None:
            firings.append(firing)
    return firings


def _trigger(config: TriggerConfig = CONFIG) -> DriftTrigger:
    trigger = DriftTrigger(CHANNELS, config)
    trigger.set_baseline("pump", BASE)
    return trigger


def test_normal_data_never_fires() -> None:
    """Data like the baseline keeps the trigger quiet."""
    assert _run(_trigger(), 1200) == []


def test_sustained_level_shift_fires_once_and_says_why() -> None:
    """A +25 % level shift on one channel, sustained, fires once, naming channel and size."""
    trigger = _trigger()
    _run(trigger, 120)

    firings = _run(trigger, 500, start=120, level=(1.0, 1.25, 1.0))

    assert len(firings) == 1
    firing = firings[0]
    assert (firing.statistic, firing.channel) == ("level", "current")
    assert firing.deviation == pytest.approx(0.25, abs=0.03)
    assert firing.time - firing.since >= CONFIG.sustain_s
    assert firing.recent_normalisation.mean[1] == pytest.approx(12.5, rel=0.02)


def test_short_burst_does_not_fire() -> None:
    """A 20-s burst of huge values stays an anomaly: it leaves the window before sustain_s."""
    firings = _run(_trigger(), 900, burst=range(300, 320))

    assert firings == []


def test_scale_change_fires_as_scale() -> None:
    """Doubling the noise, sustained, fires on the scale statistic."""
    firings = _run(_trigger(), 500, scale=2.0)

    assert [f.statistic for f in firings] == ["scale"]


def test_sustained_anomaly_rate_fires() -> None:
    """Half of all windows above the threshold, sustained, fires on the anomaly rate."""
    firings = _run(_trigger(), 500, above=5)

    assert [(f.statistic, f.channel) for f in firings] == [("anomaly_rate", None)]


def test_cooldown_and_daily_cap_bound_firings() -> None:
    """After a firing the cooldown holds; at most max_per_day firings in 24 h."""
    trigger = _trigger()

    firings = _run(trigger, 3000, level=(1.0, 1.3, 1.0))

    times = [f.time for f in firings]
    assert len(firings) == CONFIG.max_per_day
    assert all(b - a >= CONFIG.cooldown_s for a, b in itertools.pairwise(times))
    assert trigger.suppressed > 0


def test_new_baseline_accepts_the_new_normal() -> None:
    """After re-baselining on the drifted statistics the same data no longer fires."""
    trigger = _trigger(TriggerConfig(window_s=60.0, sustain_s=180.0, cooldown_s=0.0))
    firing = _run(trigger, 400, level=(1.0, 1.25, 1.0))[0]

    trigger.set_baseline("pump", firing.recent_normalisation)
    later = _run(trigger, 600, start=400, level=(1.0, 1.25, 1.0))

    assert later == []


@pytest.mark.parametrize(
    "kwargs",
    [{"sustain_s": 60.0, "window_s": 60.0}, {"fraction": 0.0}, {"rate_factor": 1.0}],
)
def test_invalid_configuration_is_refused(kwargs: dict[str, float]) -> None:
    """A sustain period not longer than the window (bursts could fire) and other nonsense fail."""
    with pytest.raises(ValueError, match=r"trigger|sustain"):
        TriggerConfig(**kwargs)  # type: ignore[arg-type]
