"""The inference hot path: frames in, windows scored in micro-batches, episodes out.

``InferenceEngine`` knows nothing about MQTT. Frames are submitted from any thread (the MQTT
network thread in the service) into a bounded queue; one inference thread turns them into
windows, calibrates each new device, scores ready windows in micro-batches (up to
``batch_size`` windows, or whatever is ready after ``max_wait_s``) and applies the detector.

Calibration: each device's first ``calibration_windows`` windows are treated as normal data.
They fix the device's normalisation (per-channel mean and std) and join the node's calibration
set, whose scores under the active model set the node threshold. Those windows are used for
calibration, not scored for anomalies; every later window is scored exactly once.

Model hot swap: ``offer_model`` builds nothing on the hot path. The caller (a loader thread)
builds the ``WindowScorer`` and the new threshold first; the inference thread picks the new
model up between two batches, so each window is scored by exactly one model.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from edge_node.detector import DetectorConfig, EpisodeEvent, EpisodeTracker, calibrate_threshold
from edge_node.scorer import WindowScorer
from edge_node.state import Calibration, Normalisation
from edge_node.windows import DeviceWindows, WindowBlock, WindowConfig
from fedge.transport import RejectLog
from fedge.wire import SensorFrame

log = logging.getLogger(__name__)

_STOP = object()
MIN_STD = 1e-6


@dataclass(frozen=True)
class EngineConfig:
    window: WindowConfig = field(default_factory=WindowConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    calibration_windows: int = 200
    max_calibration_set: int = 4000
    batch_size: int = 256
    max_wait_s: float = 0.005
    queue_frames: int = 10_000


@dataclass(frozen=True)
class ActiveModel:
    """A model ready to score: its session, identity and the node threshold under it."""

    scorer: WindowScorer
    model: str
    version: int
    origin: str
    threshold: float | None
    # A locally fine-tuned model comes with the normalisation it was trained under (for the
    # devices that drifted) and the windows its threshold was calibrated on; both take effect
    # at the swap, together with the model.
    normalisations: Mapping[str, Normalisation] | None = None
    calibration: NDArray[np.float32] | None = None


@dataclass
class EngineStats:
    frames: int = 0
    windows_scored: int = 0
    windows_calibration: int = 0
    windows_unscored: int = 0  # ready but no model or threshold yet
    batches: int = 0
    episodes: int = 0  # opened
    episodes_closed: int = 0
    swaps: int = 0


BlockHook = Callable[[WindowBlock, NDArray[np.float32], NDArray[np.float32], float, bool], None]
"""(block, normalised windows, scores, threshold, device in an open episode)"""
ScoredHook = Callable[[str, NDArray[np.int64], NDArray[np.float32], int], None]
EventHook = Callable[[EpisodeEvent, ActiveModel], None]


class InferenceEngine:
    """Windows, calibration, micro-batched scoring and detection for one node."""

    def __init__(
        self,
        channels: tuple[str, ...],
        config: EngineConfig,
        on_event: EventHook,
        rejects: RejectLog,
        *,
        calibration: Calibration | None = None,
        on_scored: ScoredHook | None = None,
    ) -> None:
        self.channels = channels
        self.config = config
        self.stats = EngineStats()
        self.rejects = rejects
        self._on_event = on_event
        self._on_scored = on_scored
        self._queue: queue.Queue[object] = queue.Queue(config.queue_frames)
        self._devices: dict[str, DeviceWindows] = {}
        self._norms: dict[str, Normalisation] = {}
        self._calibrating: dict[str, list[WindowBlock]] = {}
        self._calibration_set: list[NDArray[np.float32]] = []
        self._calibration_lock = threading.Lock()
        self._model: ActiveModel | None = None
        self._next_model: ActiveModel | None = None
        self._swap_lock = threading.Lock()
        self._tracker = EpisodeTracker(config.detector, channels)
        self.on_calibrated: Callable[[Calibration], None] | None = None
        # (device, normalised calibration windows, their end times): normal data by definition,
        # which local learning keeps as training data.
        self.on_calibration_windows: (
            Callable[[str, NDArray[np.float32], NDArray[np.float64]], None] | None
        ) = None
        # Observers for local learning, called in the inference thread: keep them cheap.
        self.on_frame: Callable[[SensorFrame], None] | None = None
        self.on_block: BlockHook | None = None
        if calibration is not None:
            self._norms.update(calibration.devices)
            self._calibration_set.append(calibration.windows)

    # -- called from other threads -------------------------------------------------------------

    def submit(self, frame: SensorFrame) -> None:
        """Queue a decoded frame for the inference thread (blocks when the queue is full)."""
        self._queue.put(frame)

    def stop(self) -> None:
        self._queue.put(_STOP)

    def offer_model(self, model: ActiveModel) -> None:
        """Make ``model`` (scorer built, threshold computed) current from the next batch on."""
        with self._swap_lock:
            self._next_model = model

    @property
    def model(self) -> ActiveModel | None:
        return self._next_model or self._model

    def normalisation(self, device: str) -> Normalisation | None:
        """The device's current normalisation, once it is calibrated."""
        return self._norms.get(device)

    def calibration_windows(self) -> NDArray[np.float32]:
        """A snapshot of the node's normalised calibration windows (for a new threshold)."""
        with self._calibration_lock:
            if not self._calibration_set:
                return np.empty((0, self.config.window.window, len(self.channels)), np.float32)
            return np.concatenate(self._calibration_set)

    def threshold_for(self, scorer: WindowScorer) -> float | None:
        """The node threshold ``scorer`` would need, from the calibration set (None if empty)."""
        return threshold_over(scorer, self.calibration_windows(), self.config.detector)

    # -- the inference thread --------------------------------------------------------------------

    def run(self) -> None:
        """Process frames until ``stop``; returns after scoring what was already queued."""
        pending: list[WindowBlock] = []
        pending_count = 0
        oldest = 0.0
        while True:
            timeout = (
                None
                if not pending
                else max(0.0, oldest + self.config.max_wait_s - time.monotonic())
            )
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._score(pending)
                return
            if isinstance(item, SensorFrame):
                for block in self._windows(item):
                    if not pending:
                        oldest = time.monotonic()
                    pending.append(block)
                    pending_count += block.count
            if pending and (
                pending_count >= self.config.batch_size
                or time.monotonic() - oldest >= self.config.max_wait_s
                or item is None
            ):
                self._score(pending)
                pending, pending_count = [], 0

    def _windows(self, frame: SensorFrame) -> list[WindowBlock]:
        self.stats.frames += 1
        values = self._align(frame)
        if values is None:
            return []
        stream = self._devices.get(frame.device)
        if stream is None:
            stream = DeviceWindows(frame.device, len(self.channels), self.config.window)
            self._devices[frame.device] = stream
        aligned = frame if values is frame.values else _with_values(frame, values, self.channels)
        if self.on_frame is not None:
            self.on_frame(aligned)
        ready = []
        for block in stream.add(aligned):
            if frame.device in self._norms:
                ready.append(block)
            else:
                self._calibrate(block)
        return ready

    def _align(self, frame: SensorFrame) -> NDArray[np.float32] | None:
        """The frame's values in the node's channel order, or None (rejected and counted)."""
        if frame.channels == self.channels:
            return frame.values
        if sorted(frame.channels) == sorted(self.channels):
            order = [frame.channels.index(c) for c in self.channels]
            return np.ascontiguousarray(frame.values[:, order])
        self.rejects.record(
            f"device {frame.device}",
            f"channels {list(frame.channels)} do not match the node's {list(self.channels)}",
        )
        return None

    def _calibrate(self, block: WindowBlock) -> None:
        collected = self._calibrating.setdefault(block.device, [])
        collected.append(block)
        self.stats.windows_calibration += block.count
        if sum(b.count for b in collected) < self.config.calibration_windows:
            return
        blocks = self._calibrating.pop(block.device)
        raw = np.concatenate([b.raw for b in blocks])
        norm = fit_normalisation(raw)
        self._norms[block.device] = norm
        normalised = norm.apply(raw)
        with self._calibration_lock:
            room = self.config.max_calibration_set - sum(w.shape[0] for w in self._calibration_set)
            if room > 0:
                self._calibration_set.append(normalised[:room])
        if self.on_calibration_windows is not None:
            end_time = np.concatenate([b.end_time for b in blocks])
            self.on_calibration_windows(block.device, normalised, end_time)
        self._take_next_model()
        model = self._model
        if model is not None:
            threshold = self.threshold_for(model.scorer)
            self._model = replace(model, threshold=threshold)
        log.info("device %s calibrated on %d windows", block.device, raw.shape[0])
        if self.on_calibrated is not None:
            self.on_calibrated(self.snapshot_calibration())

    def snapshot_calibration(self) -> Calibration:
        model = self._model
        return Calibration(
            channels=self.channels,
            threshold=None if model is None else model.threshold,
            devices=dict(self._norms),
            model_version=model.version if model else -1,
            windows=self.calibration_windows(),
        )

    def _take_next_model(self) -> None:
        with self._swap_lock:
            taken = self._next_model
            if taken is None:
                return
            self._model, self._next_model = taken, None
            self.stats.swaps += 1
        if taken.normalisations:
            self._norms.update(taken.normalisations)
        if taken.calibration is not None:
            with self._calibration_lock:
                self._calibration_set = [taken.calibration]
        if taken.threshold is None:
            # Offered while the calibration set was empty; calibration may have ended since.
            self._model = replace(taken, threshold=self.threshold_for(taken.scorer))

    def _score(self, blocks: list[WindowBlock]) -> None:
        self._take_next_model()
        model = self._model
        if not blocks:
            return
        if model is None or model.threshold is None:
            self.stats.windows_unscored += sum(b.count for b in blocks)
            return
        normalised_blocks = [self._norms[b.device].apply(b.raw) for b in blocks]
        batch = (
            normalised_blocks[0]
            if len(normalised_blocks) == 1
            else np.concatenate(normalised_blocks)
        )
        scores = model.scorer.score(batch)
        start = 0
        for i, block in enumerate(blocks):
            stop = start + block.count
            score, channel_error = scores.score[start:stop], scores.channel_error[start:stop]
            if self._on_scored is not None:
                self._on_scored(block.device, block.end_index, score, model.version)
            for event in self._tracker.update(
                block.device, block.end_time, score, channel_error, model.threshold
            ):
                self.stats.episodes += event.state == "open"
                self.stats.episodes_closed += event.state == "closed"
                self._on_event(event, model)
            if self.on_block is not None:
                in_episode = block.device in self._tracker.open_devices()
                self.on_block(block, normalised_blocks[i], score, model.threshold, in_episode)
            start = stop
        # Counted once the batch's episodes are out: a reader that sees the count also sees the
        # events of every window it counts.
        self.stats.batches += 1
        self.stats.windows_scored += batch.shape[0]


def fit_normalisation(raw: NDArray[np.float32]) -> Normalisation:
    """Per-channel mean and std over every reading of ``raw`` windows ``(k, w, c)`` (a
    channel that does not vary gets std 1, so it normalises to a constant, not to infinity)."""
    readings = raw.reshape(-1, raw.shape[2])
    std = readings.std(axis=0)
    return Normalisation(
        readings.mean(axis=0).astype(np.float32),
        np.where(std < MIN_STD, 1.0, std).astype(np.float32),
    )


def threshold_over(
    scorer: WindowScorer, windows: NDArray[np.float32], detector: DetectorConfig
) -> float | None:
    """The threshold ``scorer`` gets from normal ``windows`` (None when there are none)."""
    if windows.shape[0] == 0:
        return None
    scores = np.concatenate(
        [scorer.score(windows[i : i + 1024]).score for i in range(0, windows.shape[0], 1024)]
    )
    return calibrate_threshold(scores, detector)


def _with_values(
    frame: SensorFrame, values: NDArray[np.float32], channels: tuple[str, ...]
) -> SensorFrame:
    return SensorFrame(
        frame.device, frame.seq, channels, values, frame.t0, frame.period, frame.timestamps
    )
