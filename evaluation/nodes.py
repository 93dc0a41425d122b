"""One SKAB run as an edge node sees it: replayed frames, windows, calibration, test windows.

Everything here is the edge node's code: the replay's framing (``device_sim.replay.frames``),
``DeviceWindows`` for windowing (reorder, gaps), ``fit_normalisation`` and ``threshold_over``
for calibration, ``WindowScorer`` (onnxruntime) for scores and ``EpisodeTracker`` for the
hysteresis that turns scores into anomaly episodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from device_sim.replay import frames
from edge_node.detector import DetectorConfig, EpisodeTracker
from edge_node.engine import fit_normalisation, threshold_over
from edge_node.scorer import WindowScorer
from edge_node.state import Normalisation
from edge_node.windows import DeviceWindows, WindowBlock, WindowConfig
from evaluation.metrics import Confusion, Episode, flag_readings
from evaluation.protocol import EvalConfig
from evaluation.skab import EvaluationError, Experiment
from fedge.wire import SensorFrame

SCORE_BATCH = 1024


@dataclass(frozen=True)
class NodeData:
    """A run split by the protocol, as the node's windows."""

    experiment: Experiment
    frames: tuple[SensorFrame, ...]
    train_frames: int  # the first frames hold exactly the training rows
    norm: Normalisation
    calibration: NDArray[np.float32]  # normalised windows ending in the training part
    test: NDArray[np.float32]  # normalised windows ending in the test part
    test_end_index: NDArray[np.int64]  # row of each test window's last reading
    test_end_time: NDArray[np.float64]

    @property
    def node(self) -> str:
        return self.experiment.node

    @property
    def channels(self) -> tuple[str, ...]:
        return self.experiment.recording.channels


@dataclass(frozen=True)
class Detection:
    """A node's verdict on its test part under one model."""

    threshold: float
    episodes: tuple[Episode, ...]
    score: NDArray[np.float32]  # per test window
    flagged: NDArray[np.bool_]  # per test reading
    confusion: Confusion


def prepare(experiment: Experiment, config: EvalConfig) -> NodeData:
    """Frame, window and calibrate one run exactly as a node fed by ``fedge replay`` would."""
    recording = experiment.recording
    framed = tuple(f for f, _ in frames(recording, experiment.node, config.frame_rows))
    train_frames = config.train_rows // config.frame_rows
    stream = DeviceWindows(
        experiment.node,
        len(recording.channels),
        WindowConfig(window=config.window, max_gap_s=config.max_gap_s),
    )
    blocks: list[WindowBlock] = []
    for frame in framed:
        blocks.extend(stream.add(frame))
    train = [b for b in blocks if int(b.end_index[-1]) < config.train_rows]
    test = [b for b in blocks if int(b.end_index[0]) >= config.train_rows]
    if not train or not test:
        raise EvaluationError(
            f"{experiment.name}: no complete {config.window}-reading window in its "
            f"{'training' if not train else 'test'} part"
        )
    raw = np.concatenate([b.raw for b in train])
    norm = fit_normalisation(raw)
    return NodeData(
        experiment=experiment,
        frames=framed,
        train_frames=train_frames,
        norm=norm,
        calibration=norm.apply(raw),
        test=norm.apply(np.concatenate([b.raw for b in test])),
        test_end_index=np.concatenate([b.end_index for b in test]),
        test_end_time=np.concatenate([b.end_time for b in test]),
    )


def calibration_windows(data: NodeData) -> int:
    """How many windows the node calibrates on: those of its training part."""
    return int(data.calibration.shape[0])


def detect(data: NodeData, onnx: bytes, detector: DetectorConfig, train_rows: int) -> Detection:
    """Threshold from the calibration windows, score the test windows, track episodes."""
    scorer = WindowScorer(onnx, data.calibration.shape[1], data.calibration.shape[2])
    threshold = threshold_over(scorer, data.calibration, detector)
    assert threshold is not None  # noqa: S101 - prepare() guarantees calibration windows
    scores = [
        scorer.score(data.test[i : i + SCORE_BATCH]) for i in range(0, len(data.test), SCORE_BATCH)
    ]
    score = np.concatenate([s.score for s in scores])
    channel_error = np.concatenate([s.channel_error for s in scores])
    tracker = EpisodeTracker(detector, data.channels)
    events = tracker.update(data.node, data.test_end_time, score, channel_error, threshold)
    episodes = episodes_from((e.state, e.start_time, e.end_time) for e in events)
    return verdict(data, threshold, episodes, score, train_rows)


def episodes_from(events: Iterable[tuple[str, float, float | None]]) -> tuple[Episode, ...]:
    """Episodes from ``(state, start, end)`` in the order the node reported them."""
    open_at: float | None = None
    episodes: list[Episode] = []
    for state, start, end in events:
        if state == "open":
            open_at = float(start)
        elif state == "closed":
            episodes.append(Episode(float(start), None if end is None else float(end)))
            open_at = None
    if open_at is not None:
        episodes.append(Episode(open_at, None))
    return tuple(episodes)


def verdict(
    data: NodeData,
    threshold: float,
    episodes: tuple[Episode, ...],
    score: NDArray[np.float32],
    train_rows: int,
) -> Detection:
    recording = data.experiment.recording
    times = recording.timestamps[train_rows:]
    flagged = flag_readings(times, episodes)
    truth = data.experiment.anomaly[train_rows:]
    return Detection(threshold, episodes, score, flagged, Confusion.of(truth, flagged))
