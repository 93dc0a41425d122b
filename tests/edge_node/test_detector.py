"""The node threshold and the per-device hysteresis that turns window scores into episodes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from edge_node.detector import DetectorConfig, EpisodeEvent, EpisodeTracker, calibrate_threshold

CHANNELS = ("vibration", "current", "pressure", "flow")
THRESHOLD = 1.0


def _tracker(min_windows: int = 3, clear_windows: int = 3) -> EpisodeTracker:
    config = DetectorConfig(
        min_windows=min_windows, clear_windows=clear_windows, exit_ratio=0.5, top_channels=2
    )
    return EpisodeTracker(config, CHANNELS)


def _update(
    tracker: EpisodeTracker,
    scores: Sequence[float],
    *,
    device: str = "pump-1",
    t0: float = 0.0,
    hot_channel: int = 2,
) -> list[EpisodeEvent]:
    """Windows at times t0, t0 + 1, ... whose error sits mostly on ``hot_channel``."""
    score = np.asarray(scores, np.float32)
    channel_error = np.full((score.size, len(CHANNELS)), 0.01, np.float32)
    channel_error[:, hot_channel] = score
    end_time = t0 + np.arange(score.size, dtype=np.float64)
    return tracker.update(device, end_time, score, channel_error, THRESHOLD)


def test_threshold_is_the_calibration_quantile_times_one_plus_margin() -> None:
    """threshold = quantile(scores) * (1 + margin)."""
    # Prepare
    scores = np.arange(1, 101, dtype=np.float32)
    config = DetectorConfig(quantile=0.9, margin=0.25)

    # Execute
    threshold = calibrate_threshold(scores, config)

    # Assert
    assert threshold == pytest.approx(float(np.quantile(scores, 0.9)) * 1.25)


def test_threshold_of_perfect_reconstruction_stays_positive() -> None:
    """All-zero calibration scores give a tiny positive threshold, not zero."""
    config = DetectorConfig()
    assert calibrate_threshold(np.zeros(10, np.float32), config) == pytest.approx(
        1e-12 * (1 + config.margin)
    )


def test_threshold_without_calibration_windows_is_refused() -> None:
    """An empty calibration set raises ValueError."""
    with pytest.raises(ValueError, match="without calibration windows"):
        calibrate_threshold(np.zeros(0, np.float32), DetectorConfig())


@pytest.mark.parametrize(
    "overrides",
    [
        {"quantile": 0.4},
        {"quantile": 1.5},
        {"margin": -0.1},
        {"exit_ratio": 0.0},
        {"exit_ratio": 1.2},
        {"min_windows": 0},
        {"clear_windows": 0},
        {"top_channels": 0},
    ],
)
def test_invalid_detector_configuration_is_refused(overrides: dict[str, Any]) -> None:
    """Out-of-range quantile, margin, exit ratio or counts raise ValueError."""
    with pytest.raises(ValueError, match="invalid detector configuration"):
        replace(DetectorConfig(), **overrides)


def test_scores_at_or_below_the_threshold_never_open_an_episode() -> None:
    """A score equal to the threshold is not above it."""
    # Prepare
    tracker = _tracker()

    # Execute
    events = _update(tracker, [0.2, 1.0, 1.0, 1.0, 0.99, 1.0])

    # Assert
    assert events == []
    assert tracker.open_devices() == []


def test_fewer_than_min_windows_consecutive_above_do_not_open() -> None:
    """Runs of above-threshold windows shorter than min_windows are noise."""
    # Prepare
    tracker = _tracker()

    # Execute
    events = _update(tracker, [5.0, 5.0, 0.1, 5.0, 0.1, 5.0, 5.0, 0.5])

    # Assert
    assert events == []


def test_episode_opens_on_the_min_windows_th_consecutive_window_above() -> None:
    """The open event comes at once, starting at the first window of the run."""
    # Prepare
    tracker = _tracker()

    # Execute
    events = _update(tracker, [0.1, 5.0, 2.0, 3.0, 4.0])

    # Assert
    assert len(events) == 1
    event = events[0]
    assert (event.state, event.device, event.end_time) == ("open", "pump-1", None)
    assert event.start_time == 1.0
    assert event.windows == 3
    assert event.peak_score == pytest.approx(5.0)
    assert event.threshold == THRESHOLD
    assert tracker.open_devices() == ["pump-1"]


def test_episode_starting_at_time_zero_keeps_its_start_time() -> None:
    """An episode whose first window ends at t = 0.0 starts at 0.0, not when it opened."""
    # Prepare
    tracker = _tracker()

    # Execute
    events = _update(tracker, [5.0, 5.0, 5.0], t0=0.0)

    # Assert
    assert [e.start_time for e in events] == [0.0]


def test_episode_closes_after_clear_windows_below_the_exit_level() -> None:
    """Hysteresis: scores between exit level and threshold keep it open; clear_windows close."""
    # Prepare
    tracker = _tracker()
    scores = [5.0, 5.0, 5.0, 0.8, 0.4, 0.4, 0.7, 0.4, 0.4, 0.4, 0.1]
    #         t=0  1    2    3    4    5    6    7    8    9    10

    # Execute
    events = _update(tracker, scores, t0=10.0)

    # Assert
    assert [e.state for e in events] == ["open", "closed"]
    closed = events[1]
    assert closed.start_time == 10.0
    assert closed.end_time == 16.0  # the last window above the exit level
    assert closed.windows == 5  # three above the threshold, t=3 and t=6 above the exit level
    assert closed.peak_score == pytest.approx(5.0)
    assert tracker.open_devices() == []


def test_closed_event_names_the_channels_contributing_most() -> None:
    """top_channels ranks channels by their summed error over the episode."""
    # Prepare
    tracker = _tracker()

    # Execute
    events = _update(tracker, [5.0, 5.0, 5.0, 0.1, 0.1, 0.1], hot_channel=3)

    # Assert
    assert [e.top_channels for e in events] == [("flow", "vibration")] * 2


def test_events_do_not_depend_on_how_windows_are_batched() -> None:
    """Feeding windows one at a time gives the same events as one big batch."""
    # Prepare
    scores = [0.1, 5.0, 5.0, 0.2, 3.0, 2.0, 4.0, 0.6, 0.1, 0.1, 0.1, 0.2, 9.0, 9.0, 9.0]
    whole, single = _tracker(), _tracker()

    # Execute
    expected = _update(whole, scores, t0=100.0)
    events = [e for i, s in enumerate(scores) for e in _update(single, [s], t0=100.0 + i)]

    # Assert
    assert [e.state for e in expected] == ["open", "closed", "open"]
    assert events == expected


def test_a_new_episode_may_open_after_one_closes() -> None:
    """After closing, the device starts afresh: a new run of min_windows opens again."""
    # Prepare
    tracker = _tracker(min_windows=2, clear_windows=1)

    # Execute
    events = _update(tracker, [2.0, 2.0, 0.1, 3.0, 3.0, 0.1])

    # Assert
    assert [(e.state, e.start_time, e.end_time) for e in events] == [
        ("open", 0.0, None),
        ("closed", 0.0, 1.0),
        ("open", 3.0, None),
        ("closed", 3.0, 4.0),
    ]
    assert [e.peak_score for e in events] == [2.0, 2.0, 3.0, 3.0]


def test_devices_are_tracked_independently() -> None:
    """One device's run of high scores neither opens nor is reset by another device."""
    # Prepare
    tracker = _tracker()

    # Execute
    first = _update(tracker, [5.0, 5.0], device="pump-1")
    other = _update(tracker, [0.1, 0.1, 0.1], device="pump-2")
    last = _update(tracker, [5.0], device="pump-1", t0=2.0)

    # Assert
    assert first == other == []
    assert [(e.state, e.device, e.start_time) for e in last] == [("open", "pump-1", 0.0)]
    assert tracker.open_devices() == ["pump-1"]
