"""The anomaly-threshold trigger: tell drift from anomalies, and decide when to fine-tune.

The node keeps a baseline per device: each channel's mean and standard deviation from
calibration, and the share of windows expected above the threshold. It keeps the same
statistics over a rolling window of recent data (``window_s``). A channel deviates when

    level:  |mean_recent - mean_base| / max(|mean_base|, std_base)  > fraction
    scale:  std_recent / std_base - 1                                > fraction

(``fraction`` defaults to 0.20: a 20 % shift; the level is relative to the baseline level, or
to its spread when the level is near zero). The anomaly rate deviates when the share of recent
windows above the threshold exceeds ``rate_factor`` times the expected share.

The trigger fires only when a deviation is *sustained*: continuously present for
``sustain_s``. Because ``sustain_s`` is longer than ``window_s``, a short burst (a spike, a
few seconds of noise) leaves the rolling window before it can fire: short bursts stay
anomalies. A ``cooldown_s`` after each firing and a cap of ``max_per_day`` firings per 24 h
bound the training it can cause. All times are data timestamps, so replays at any speed
behave like the field.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from edge_node.state import Normalisation

DAY_S = 86_400.0


@dataclass(frozen=True)
class TriggerConfig:
    enabled: bool = True  # False: no drift fine-tuning (rounds only, e.g. a fixed evaluation)
    fraction: float = 0.20
    window_s: float = 120.0
    sustain_s: float = 300.0
    rate_factor: float = 10.0
    min_expected_rate: float = 0.005
    cooldown_s: float = 3600.0
    max_per_day: int = 4
    buckets: int = 30

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 10 or self.window_s <= 0 or self.buckets < 2:
            raise ValueError(f"invalid trigger configuration {self}")
        if self.sustain_s <= self.window_s:
            raise ValueError(
                f"sustain_s ({self.sustain_s}) must exceed window_s ({self.window_s}), "
                "or a short burst could fire the trigger"
            )
        if self.cooldown_s < 0 or self.max_per_day < 1 or self.rate_factor <= 1:
            raise ValueError(f"invalid trigger configuration {self}")


@dataclass(frozen=True)
class Firing:
    """Why the trigger fired: which device and statistic, by how much, since when."""

    device: str
    statistic: str  # "level", "scale" or "anomaly_rate"
    channel: str | None
    deviation: float  # relative, e.g. 0.25 for +25 %
    baseline: float
    recent: float
    since: float
    time: float
    recent_normalisation: Normalisation


@dataclass
class _Bucket:
    start: float
    count: int = 0
    windows: int = 0
    above: int = 0
    total: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    squares: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


@dataclass
class _Device:
    baseline: Normalisation
    buckets: deque[_Bucket] = field(default_factory=deque)
    deviating_since: float | None = None
    worst: tuple[str, str | None, float, float, float] | None = None


class DriftTrigger:
    """Rolling statistics per device against the calibration baseline; decides firings."""

    def __init__(self, channels: tuple[str, ...], config: TriggerConfig) -> None:
        self.channels = channels
        self.config = config
        self.expected_rate = config.min_expected_rate
        self._devices: dict[str, _Device] = {}
        self._firings: deque[float] = deque()
        self._last_firing: float | None = None
        self.suppressed = 0  # sustained deviations held back by cooldown or the daily cap

    def set_baseline(self, device: str, baseline: Normalisation) -> None:
        """(Re)start a device's comparison against ``baseline`` (after calibration or tuning)."""
        self._devices[device] = _Device(baseline)

    def set_expected_rate(self, rate: float) -> None:
        self.expected_rate = max(rate, self.config.min_expected_rate)

    def observe_readings(
        self, device: str, times: NDArray[np.float64], values: NDArray[np.float32]
    ) -> None:
        """Fold a frame's raw readings into the device's rolling statistics."""
        state = self._devices.get(device)
        if state is None or times.size == 0:
            return
        bucket = self._bucket(state, float(times[-1]))
        data = values.astype(np.float64)
        bucket.count += data.shape[0]
        bucket.total += data.sum(axis=0)
        bucket.squares += np.square(data).sum(axis=0)

    def observe_scores(self, device: str, time: float, above: int, windows: int) -> None:
        """Fold how many of ``windows`` scored windows were above the threshold."""
        state = self._devices.get(device)
        if state is None:
            return
        bucket = self._bucket(state, time)
        bucket.windows += windows
        bucket.above += above

    def check(self, device: str, now: float) -> Firing | None:
        """Evaluate ``device`` at data time ``now``; a Firing when drift is sustained."""
        state = self._devices.get(device)
        if state is None:
            return None
        deviation = self._deviation(state, now)
        if deviation is None:
            state.deviating_since, state.worst = None, None
            return None
        if state.deviating_since is None:
            state.deviating_since = now
        state.worst = deviation
        if now - state.deviating_since < self.config.sustain_s:
            return None
        if not self._allowed(now):
            self.suppressed += 1
            return None
        statistic, channel, value, baseline, recent = deviation
        self._record_firing(now)
        firing = Firing(
            device=device,
            statistic=statistic,
            channel=channel,
            deviation=value,
            baseline=baseline,
            recent=recent,
            since=state.deviating_since,
            time=now,
            recent_normalisation=self.recent_normalisation(device, now),
        )
        state.deviating_since = None
        return firing

    def recent_normalisation(self, device: str, now: float) -> Normalisation:
        """The baseline, moved to the recent data only where the data moved beyond ``fraction``.

        A channel whose level shifted gets the recent mean; one whose spread grew gets the
        recent standard deviation. The rest keep the baseline, which spans more of the
        device's operating range than the rolling window does.
        """
        state = self._devices[device]
        count, total, squares = self._totals(state, now)
        base_mean = state.baseline.mean.astype(np.float64)
        base_std = state.baseline.std.astype(np.float64)
        if count < 2:
            return state.baseline
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        level = np.abs(mean - base_mean) / np.maximum(np.maximum(np.abs(base_mean), base_std), 1e-9)
        grew = std / np.maximum(base_std, 1e-9) - 1.0 > self.config.fraction
        new_mean = np.where(level > self.config.fraction, mean, base_mean)
        new_std = np.where(grew, std, base_std)
        return Normalisation(new_mean.astype(np.float32), new_std.astype(np.float32))

    # -- internals ------------------------------------------------------------------------------

    def _bucket(self, state: _Device, time: float) -> _Bucket:
        width = self.config.window_s / self.config.buckets
        if not state.buckets or time >= state.buckets[-1].start + width:
            start = time if not state.buckets else max(time, state.buckets[-1].start + width)
            c = len(self.channels)
            state.buckets.append(_Bucket(start, total=np.zeros(c), squares=np.zeros(c)))
        while state.buckets and state.buckets[0].start < time - self.config.window_s:
            state.buckets.popleft()
        return state.buckets[-1]

    def _totals(
        self, state: _Device, now: float
    ) -> tuple[int, NDArray[np.float64], NDArray[np.float64]]:
        c = len(self.channels)
        count, total, squares = 0, np.zeros(c), np.zeros(c)
        for bucket in state.buckets:
            if bucket.start >= now - self.config.window_s:
                count += bucket.count
                total += bucket.total
                squares += bucket.squares
        return count, total, squares

    def _deviation(
        self, state: _Device, now: float
    ) -> tuple[str, str | None, float, float, float] | None:
        """The largest deviation beyond ``fraction`` right now, or None."""
        count, total, squares = self._totals(state, now)
        span = now - state.buckets[0].start if state.buckets else 0.0
        if count < 2 or span < 0.5 * self.config.window_s:
            return None  # not enough recent data to judge
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        base_mean = state.baseline.mean.astype(np.float64)
        base_std = state.baseline.std.astype(np.float64)
        level = np.abs(mean - base_mean) / np.maximum(np.maximum(np.abs(base_mean), base_std), 1e-9)
        # Only a rise in spread is drift: a quiet stretch (a pump idling) is not.
        scale = np.maximum(std / np.maximum(base_std, 1e-9) - 1.0, 0.0)
        # (statistic, channel, deviation, baseline, recent, excess): excess > 1 means beyond
        # the configured bound, which puts shifts and the anomaly rate on one scale.
        candidates: list[tuple[str, str | None, float, float, float, float]] = []
        j = int(np.argmax(level))
        frac = self.config.fraction
        candidates.append(
            ("level", self.channels[j], float(level[j]), float(base_mean[j]), float(mean[j]),
             float(level[j]) / frac)
        )  # fmt: skip
        j = int(np.argmax(scale))
        candidates.append(
            ("scale", self.channels[j], float(scale[j]), float(base_std[j]), float(std[j]),
             float(scale[j]) / frac)
        )  # fmt: skip
        windows = sum(b.windows for b in state.buckets)
        if windows:
            rate = sum(b.above for b in state.buckets) / windows
            limit = self.expected_rate * self.config.rate_factor
            candidates.append(("anomaly_rate", None, rate, limit, rate, rate / limit))
        worst = max(candidates, key=lambda c: c[5])
        if not worst[5] > 1.0 or not math.isfinite(worst[5]):
            return None
        return worst[:5]

    def _allowed(self, now: float) -> bool:
        if self._last_firing is not None and now - self._last_firing < self.config.cooldown_s:
            return False
        while self._firings and self._firings[0] <= now - DAY_S:
            self._firings.popleft()
        return len(self._firings) < self.config.max_per_day

    def _record_firing(self, now: float) -> None:
        self._last_firing = now
        self._firings.append(now)
