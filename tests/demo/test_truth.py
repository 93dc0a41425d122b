"""Ground truth from label frames: injected spans joined across frames, split at gaps."""

from __future__ import annotations

import numpy as np
import pytest

from demo.truth import GroundTruth
from fedge.wire import LabelFrame

T0 = 1_700_000_000.0
NAMES = ("anomaly", "drift")


def _frame(seq: int, anomaly: list[int], drift: list[int] | None = None) -> LabelFrame:
    """A label frame of 10 Hz readings; frame ``seq`` starts at reading ``10 * seq``."""
    rows = len(anomaly)
    values = np.zeros((rows, 2), np.uint8)
    values[:, 0] = anomaly
    values[:, 1] = drift if drift is not None else [0] * rows
    return LabelFrame("pump-0", seq, NAMES, values, T0 + seq * rows * 0.1, period=0.1)


def test_a_run_that_crosses_frames_is_one_span() -> None:
    """An anomaly reaching the end of frame 3 and continuing in frame 4 is one span."""
    truth = GroundTruth()

    truth.add("node-0", _frame(3, [0] * 7 + [7] * 3), at=1.0)
    truth.add("node-0", _frame(4, [7] * 5 + [0] * 5), at=1.1)

    [span] = truth.anomalies()
    assert (span.node, span.device, span.code) == ("node-0", "pump-0", 7)
    assert span.start == pytest.approx(T0 + 3.7)
    assert span.end == pytest.approx(T0 + 4.4)
    assert span.arrived_at == 1.0


def test_a_missing_frame_between_labelled_frames_splits_the_span() -> None:
    """Frames 3 and 5 both labelled but 4 not (all normal): two spans."""
    truth = GroundTruth()

    truth.add("node-0", _frame(3, [0] * 5 + [2] * 5), at=1.0)
    truth.add("node-0", _frame(5, [2] * 10), at=1.2)

    assert [s.start for s in truth.anomalies()] == pytest.approx([T0 + 3.5, T0 + 5.0])


def test_runs_inside_one_frame_and_drift_are_kept_apart() -> None:
    """Two runs in one frame are two anomalies; the drift column makes its own span."""
    truth = GroundTruth()

    truth.add("node-1", _frame(0, [1, 1, 0, 0, 6, 6, 6, 0, 0, 0], drift=[0] * 8 + [1, 1]), at=0.5)

    anomalies = truth.anomalies()
    assert [s.code for s in anomalies] == [1, 6]
    assert [t for s in anomalies for t in (s.start, s.end)] == pytest.approx(
        [T0, T0 + 0.1, T0 + 0.4, T0 + 0.6]
    )
    [drift] = truth.drifts()
    assert drift.kind == "drift"
    assert [drift.start, drift.end] == pytest.approx([T0 + 0.8, T0 + 0.9])


def test_a_new_kind_at_the_frame_boundary_starts_a_new_span() -> None:
    """A cavitation followed directly by a spike in the next frame are two anomalies."""
    truth = GroundTruth()

    truth.add("node-0", _frame(0, [7] * 10), at=0.0)
    truth.add("node-0", _frame(1, [1] * 2 + [0] * 8), at=0.1)

    assert [s.code for s in truth.anomalies()] == [7, 1]


def test_overlap_allows_slack_after_the_span() -> None:
    """A window ending up to ``slack`` after the span still overlaps it; an open episode
    (end None) overlaps anything that started before the span ended."""
    truth = GroundTruth()
    truth.add("node-0", _frame(0, [3] * 10), at=0.0)
    [span] = truth.anomalies()

    assert span.overlaps(T0 + 0.9 + 5.0, T0 + 20.0, slack=6.0)
    assert not span.overlaps(T0 + 0.9 + 7.0, T0 + 20.0, slack=6.0)
    assert span.overlaps(T0 - 100.0, None, slack=0.0)
