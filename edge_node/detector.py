"""From window scores to anomaly episodes: a calibrated threshold with hysteresis.

Threshold (per node): the ``quantile`` of the scores of the node's own calibration windows
(normal data), times ``1 + margin``. A per-node threshold is the cheapest answer to non-IID
data: each node's scale of "normal" is its own.

Hysteresis (per device): an episode opens after ``min_windows`` consecutive windows score
above the threshold, so one noisy window does not fire, and closes after ``clear_windows``
consecutive windows score below ``exit_ratio * threshold``, so a signal hovering at the
threshold does not flap. Each episode yields an ``open`` event at once (low latency) and a
``closed`` event with its extent, peak score and the channels contributing most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class DetectorConfig:
    # Chosen on SKAB's real pump runs (docs/evaluation.md): the normal readings a node sees
    # later spread wider than its calibration readings, so a thin margin raises false alarms.
    quantile: float = 0.99
    margin: float = 1.5
    min_windows: int = 3
    clear_windows: int = 3
    exit_ratio: float = 0.8
    top_channels: int = 3

    def __post_init__(self) -> None:
        if not 0.5 <= self.quantile <= 1.0 or self.margin < 0 or not 0 < self.exit_ratio <= 1:
            raise ValueError(f"invalid detector configuration {self}")
        if self.min_windows < 1 or self.clear_windows < 1 or self.top_channels < 1:
            raise ValueError(f"invalid detector configuration {self}")


def calibrate_threshold(scores: NDArray[np.floating], config: DetectorConfig) -> float:
    """The threshold for a node whose normal windows scored ``scores``."""
    if scores.size == 0:
        raise ValueError("cannot calibrate a threshold without calibration windows")
    base = float(np.quantile(scores, config.quantile))
    return max(base, 1e-12) * (1.0 + config.margin)


@dataclass(frozen=True)
class EpisodeEvent:
    """An episode opened (``end_time`` is None) or closed."""

    state: str  # "open" | "closed"
    device: str
    start_time: float
    end_time: float | None
    peak_score: float
    threshold: float
    windows: int
    top_channels: tuple[str, ...]


@dataclass
class _DeviceState:
    above: int = 0
    below: int = 0
    active: bool = False
    start_time: float = 0.0
    last_above_time: float = 0.0
    peak: float = 0.0
    windows: int = 0
    channel_error: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    pending_start: float | None = None


@dataclass
class EpisodeTracker:
    """Applies the hysteresis rule to each device's stream of window scores."""

    config: DetectorConfig
    channels: Sequence[str]
    _devices: dict[str, _DeviceState] = field(default_factory=dict)

    def update(
        self,
        device: str,
        end_time: NDArray[np.float64],
        score: NDArray[np.float32],
        channel_error: NDArray[np.float32],
        threshold: float,
    ) -> list[EpisodeEvent]:
        state = self._devices.setdefault(device, _DeviceState())
        if not state.active and state.above == 0 and float(score.max(initial=0.0)) <= threshold:
            return []  # the common case, vectorised: nothing above the threshold
        events: list[EpisodeEvent] = []
        exit_level = threshold * self.config.exit_ratio
        for i in range(score.shape[0]):
            s, t = float(score[i]), float(end_time[i])
            if not state.active:
                if s > threshold:
                    if state.above == 0:
                        state.pending_start = t
                        state.peak, state.windows = 0.0, 0
                        state.channel_error = np.zeros(channel_error.shape[1])
                    state.above += 1
                    self._accumulate(state, s, t, channel_error[i])
                    if state.above >= self.config.min_windows:
                        state.active, state.below = True, 0
                        start = state.pending_start  # 0.0 is a valid start time
                        state.start_time = t if start is None else start
                        events.append(self._event("open", device, state, threshold, None))
                else:
                    state.above = 0
                continue
            if s > exit_level:
                state.below = 0
                self._accumulate(state, s, t, channel_error[i])
            else:
                state.below += 1
                if state.below >= self.config.clear_windows:
                    events.append(
                        self._event("closed", device, state, threshold, state.last_above_time)
                    )
                    self._devices[device] = _DeviceState()
                    state = self._devices[device]
        return events

    def _accumulate(
        self, state: _DeviceState, s: float, t: float, channel_error: NDArray[np.float32]
    ) -> None:
        state.windows += 1
        state.last_above_time = t
        state.peak = max(state.peak, s)
        state.channel_error += channel_error

    def _event(
        self,
        kind: str,
        device: str,
        state: _DeviceState,
        threshold: float,
        end_time: float | None,
    ) -> EpisodeEvent:
        order = np.argsort(-state.channel_error)[: self.config.top_channels]
        return EpisodeEvent(
            state=kind,
            device=device,
            start_time=state.start_time,
            end_time=end_time,
            peak_score=state.peak,
            threshold=threshold,
            windows=state.windows,
            top_channels=tuple(self.channels[int(i)] for i in order),
        )

    def open_devices(self) -> list[str]:
        return [d for d, s in self._devices.items() if s.active]
