"""Per-device sliding windows over a stream of sensor frames.

Frames arrive over MQTT, so they can be duplicated (QoS 1 redelivery), reordered, or missing.
``DeviceWindows`` restores order by sequence number with a small reorder buffer, drops
duplicates and late frames, and resets the window when the stream has a gap in time longer
than ``max_gap_s`` rather than stitching unrelated data together. A publisher that restarts
(its sequence numbers begin again while time moves on) starts a new stream. Ready windows
come out as one ``(k, w, c)`` block per frame, as measured; the engine normalises them.

Windows are numbered by the index of their last reading since the device's stream started
(``end_index``), so downstream code can prove that no window is lost or scored twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from fedge.wire import SensorFrame


@dataclass(frozen=True)
class WindowConfig:
    """Window length ``w``, stride, reorder depth (frames) and the longest tolerated gap."""

    window: int = 60
    stride: int = 1
    reorder_frames: int = 8
    max_gap_s: float = 5.0
    restart_frames: int = 1000

    def __post_init__(self) -> None:
        if self.window < 2 or self.stride < 1 or self.reorder_frames < 0 or self.max_gap_s <= 0:
            raise ValueError(f"invalid window configuration {self}")


@dataclass(frozen=True)
class WindowBlock:
    """Windows that became ready from one frame, as measured, with their identity."""

    device: str
    raw: NDArray[np.float32]  # (k, w, c), as measured
    end_index: NDArray[np.int64]  # (k,), index of each window's last reading
    end_time: NDArray[np.float64]  # (k,), timestamp of each window's last reading

    @property
    def count(self) -> int:
        return int(self.raw.shape[0])


@dataclass
class StreamStats:
    frames: int = 0
    duplicates: int = 0
    stale: int = 0
    gaps: int = 0
    missing_frames: int = 0
    restarts: int = 0
    windows: int = 0


@dataclass
class DeviceWindows:
    """The ring of recent readings for one device, and its ordering state."""

    device: str
    channels: int
    config: WindowConfig
    stats: StreamStats = field(default_factory=StreamStats)
    _tail: NDArray[np.float32] = field(init=False)
    _tail_times: NDArray[np.float64] = field(init=False)
    _next_seq: int | None = field(default=None, init=False)
    _held: dict[int, SensorFrame] = field(default_factory=dict, init=False)
    _readings: int = field(default=0, init=False)  # readings since the stream started
    _run: int = field(default=0, init=False)  # readings since the last reset
    _last_time: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._tail = np.empty((0, self.channels), np.float32)
        self._tail_times = np.empty(0, np.float64)

    def add(self, frame: SensorFrame) -> list[WindowBlock]:
        """Accept a frame; return the window blocks that became ready (possibly several)."""
        self.stats.frames += 1
        if self._next_seq is None:
            self._next_seq = frame.seq
        if frame.seq < self._next_seq:
            if not self._restarted(frame, self._next_seq):
                self.stats.stale += 1  # already consumed or given up on: a redelivery
                return []
            # The publisher restarted (its sequence began again): a new stream, not a replay.
            self.stats.restarts += 1
            self._held.clear()
            self._reset()
            self._next_seq = frame.seq
        if frame.seq in self._held:
            self.stats.duplicates += 1
            return []
        self._held[frame.seq] = frame
        blocks: list[WindowBlock] = []
        while self._held:
            if self._next_seq in self._held:
                blocks.extend(self._consume(self._held.pop(self._next_seq)))
                self._next_seq += 1
            elif len(self._held) > self.config.reorder_frames:
                # The missing frame is not coming: skip to the oldest held one (a gap).
                oldest = min(self._held)
                self.stats.missing_frames += oldest - self._next_seq
                self._reset()
                self._next_seq = oldest
            else:
                break
        return blocks

    def _restarted(self, frame: SensorFrame, next_seq: int) -> bool:
        """A lower ``seq`` is a restarted publisher, not a redelivery, when time moved on
        (the frame is newer than anything consumed) or the sequence fell back further than
        any redelivery could reach (``restart_frames``)."""
        newer = self._last_time is not None and frame.t0 > self._last_time
        return newer or next_seq - frame.seq > self.config.restart_frames

    def _reset(self) -> None:
        self.stats.gaps += 1
        self._tail = self._tail[:0]
        self._tail_times = self._tail_times[:0]
        self._run = 0
        self._last_time = None

    def _consume(self, frame: SensorFrame) -> list[WindowBlock]:
        """Window a frame's readings; a gap longer than ``max_gap_s`` inside the frame (a
        device that batched across an outage) resets the windows just as one between frames."""
        times = frame.times()
        inner = np.flatnonzero(np.diff(times) > self.config.max_gap_s) + 1
        if inner.size == 0:
            return self._consume_rows(frame.values, times)
        blocks: list[WindowBlock] = []
        for values, stamps in zip(
            np.split(frame.values, inner), np.split(times, inner), strict=True
        ):
            blocks.extend(self._consume_rows(values, stamps))
        return blocks

    def _consume_rows(
        self, values: NDArray[np.float32], times: NDArray[np.float64]
    ) -> list[WindowBlock]:
        if self._last_time is not None and times[0] - self._last_time > self.config.max_gap_s:
            self._reset()
        self._last_time = float(times[-1])
        w, stride = self.config.window, self.config.stride
        rows = values.shape[0]
        data = np.concatenate((self._tail, values)) if self._tail.size else values
        data_times = np.concatenate((self._tail_times, times)) if self._tail.size else times
        run_before = self._run
        start_run = run_before - self._tail.shape[0]  # run index of data[0]
        self._run += rows
        first_index = self._readings - self._tail.shape[0]  # stream index of data[0]
        self._readings += rows
        # New window ends: run indices e >= w-1 among the new readings, on the stride grid.
        lo = max(w - 1, run_before)
        first_end = lo + (-(lo - (w - 1))) % stride
        ends = np.arange(first_end, self._run, stride, dtype=np.int64)
        keep = min(data.shape[0], w - 1)  # the history the next window needs
        self._tail = data[-keep:].copy()
        self._tail_times = data_times[-keep:].copy()
        if ends.size == 0:
            return []
        local_end = ends - start_run
        views = sliding_window_view(data, w, axis=0)  # (n - w + 1, c, w)
        raw = np.ascontiguousarray(views[local_end - (w - 1)].transpose(0, 2, 1))
        self.stats.windows += ends.size
        return [
            WindowBlock(
                device=self.device,
                raw=raw,
                end_index=first_index + local_end,
                end_time=data_times[local_end],
            )
        ]
