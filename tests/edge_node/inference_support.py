"""Shared pieces for the edge node's unit tests: a signal, frames, an engine run, recorders."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from edge_node.detector import DetectorConfig, EpisodeEvent
from edge_node.engine import ActiveModel, EngineConfig, InferenceEngine
from edge_node.scorer import Scores, WindowScorer
from edge_node.windows import WindowConfig
from fedge.models import ModelSpec
from fedge.wire import SensorFrame

if TYPE_CHECKING:  # torch only for the annotation: this module stays importable without it
    from torch import nn

CHANNELS: Final = ("vibration", "current", "pressure")
WINDOW: Final = 16
STRIDE: Final = 3
ROWS: Final = 8  # readings per frame
PERIOD: Final = 0.1  # seconds between readings
T_START: Final = 1_700_000_000.0
_NOISE: Final = np.random.default_rng(7).standard_normal((20_000, 3)) * 0.2


def signal(start: int, rows: int) -> NDArray[np.float32]:
    """Three smooth noisy channels; reading ``i`` is the same whatever the framing or device."""
    i = np.arange(start, start + rows, dtype=np.float64)
    noise = _NOISE[start : start + rows]
    base = np.stack(
        [np.sin(2 * np.pi * i / 20), np.cos(2 * np.pi * i / 32), 0.5 * np.sin(2 * np.pi * i / 9)],
        axis=1,
    )
    return (base + noise).astype(np.float32)


@dataclass(frozen=True)
class Exported:
    """A seeded torch module, its spec and its ONNX bytes."""

    spec: ModelSpec
    module: nn.Module
    onnx: bytes


def grid(readings: int, window: int = WINDOW, stride: int = STRIDE, start: int = 0) -> list[int]:
    """End indices of the windows over readings ``start .. readings - 1`` on the stride grid."""
    return list(range(start + window - 1, readings, stride))


@dataclass(frozen=True)
class FrameFactory:
    """Builds the frames of one device's stream: ``ROWS`` readings per frame, regular time.

    Reading ``i`` (frame ``seq = i // rows``) is taken at ``T_START + i * PERIOD``, plus
    ``gap_s`` for frames from ``gap_at`` on. ``spikes`` adds ``spike`` to channel
    ``spike_channel`` at the given reading indices.
    """

    rows: int = ROWS
    channels: tuple[str, ...] = CHANNELS

    def frame(
        self,
        device: str,
        seq: int,
        *,
        channels: Sequence[str] | None = None,
        spikes: Sequence[int] = (),
        spike: float = 20.0,
        spike_channel: int = 0,
        shift_s: float = 0.0,
    ) -> SensorFrame:
        start = seq * self.rows
        values = signal(start, self.rows)
        for index in spikes:
            if start <= index < start + self.rows:
                values[index - start, spike_channel] += spike
        names = tuple(channels) if channels is not None else self.channels
        if names != self.channels:
            values = np.ascontiguousarray(values[:, [self.channels.index(c) for c in names]])
        t0 = T_START + start * PERIOD + shift_s
        return SensorFrame(device, seq, names, values, t0=t0, period=PERIOD)

    def stream(
        self,
        device: str,
        count: int,
        *,
        first_seq: int = 0,
        channels: Sequence[str] | None = None,
        spikes: Sequence[int] = (),
        spike_channel: int = 0,
        gap_at: int | None = None,
        gap_s: float = 0.0,
    ) -> list[SensorFrame]:
        return [
            self.frame(
                device,
                seq,
                channels=channels,
                spikes=spikes,
                spike_channel=spike_channel,
                shift_s=gap_s if gap_at is not None and seq >= gap_at else 0.0,
            )
            for seq in range(first_seq, first_seq + count)
        ]


def engine_config(
    *,
    stride: int = STRIDE,
    calibration_windows: int = 40,
    batch_size: int = 32,
    reorder_frames: int = 4,
    max_wait_s: float = 0.002,
) -> EngineConfig:
    """A small engine: 16-reading windows, a forgiving threshold, quick micro-batches."""
    return EngineConfig(
        window=WindowConfig(WINDOW, stride=stride, reorder_frames=reorder_frames, max_gap_s=1.0),
        detector=DetectorConfig(quantile=1.0, margin=0.5, min_windows=3, clear_windows=3),
        calibration_windows=calibration_windows,
        batch_size=batch_size,
        max_wait_s=max_wait_s,
    )


@dataclass
class Journal:
    """What the inference thread did, in order: model calls and on_scored calls."""

    entries: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, version, size)
    scored: dict[str, list[tuple[int, float, int]]] = field(default_factory=dict)

    def __call__(
        self, device: str, end_index: NDArray[np.int64], score: NDArray[np.float32], version: int
    ) -> None:
        self.entries.append(("scored", version, int(end_index.shape[0])))
        rows = self.scored.setdefault(device, [])
        rows.extend((int(e), float(s), version) for e, s in zip(end_index, score, strict=True))

    def indices(self, device: str) -> list[int]:
        return [e for e, _, _ in self.scored.get(device, [])]

    def scores(self, device: str) -> dict[int, float]:
        return {e: s for e, s, _ in self.scored.get(device, [])}

    def versions(self, device: str) -> list[int]:
        return [v for _, _, v in sorted(self.scored.get(device, []))]


class RecordingScorer(WindowScorer):
    """A real scorer that also writes each call into a journal, tagged with a model version."""

    def __init__(self, onnx_bytes: bytes, journal: Journal, version: int) -> None:
        super().__init__(onnx_bytes, WINDOW, len(CHANNELS))
        self.journal, self.version = journal, version

    def score(self, windows: NDArray[np.float32]) -> Scores:
        self.journal.entries.append(("batch", self.version, int(windows.shape[0])))
        return super().score(windows)


def active(scorer: WindowScorer, version: int = 1, threshold: float | None = None) -> ActiveModel:
    return ActiveModel(scorer, "default", version, "global", threshold)


@dataclass
class Events:
    """Collects the engine's episode events."""

    events: list[EpisodeEvent] = field(default_factory=list)

    def __call__(self, event: EpisodeEvent, model: ActiveModel) -> None:
        self.events.append(event)


@contextmanager
def running(engine: InferenceEngine) -> Iterator[InferenceEngine]:
    """Run ``engine.run()`` in a thread; on exit stop it and wait until all it had is done."""
    thread = threading.Thread(target=engine.run, name="test-inference", daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        engine.stop()
        thread.join(20)
    assert not thread.is_alive(), "the inference thread did not stop"


def submit_all(engine: InferenceEngine, frames: Sequence[SensorFrame]) -> None:
    for frame in frames:
        engine.submit(frame)
