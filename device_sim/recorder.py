"""Recording sensor frames from the broker into fedge CSV files, ``DIR/{node}/{device}.csv``.

What it guarantees, per device:

- **Order and duplicates.** Frames are written in ``seq`` order. A frame that arrives early
  waits in a reorder buffer for the ones before it; when the buffer holds more than
  ``reorder_window`` frames, when its oldest frame has waited ``reorder_wait_s`` (checked on
  ``flush``) or at the end, the missing ones are given up and counted as ``missing``. A
  device's first frames wait the same way, since a recording may start mid-stream.
  A frame whose ``seq`` is below the next one to write is either a restarted publisher (its
  first timestamp is later than anything received: recording simply continues), a QoS 1
  redelivery of a frame already written (dropped, counted as ``duplicates``) or a frame given
  up as missing that came too late to keep the file in time order (dropped, counted as
  ``late``).
- **Files.** Rows go to the device's current file. A frame that cannot continue it (different
  channels, or timestamps earlier than its last row) starts a new file; existing files are never
  overwritten, a new one is named ``{device}.2.csv``, ``{device}.3.csv``, ... (replayed as
  devices ``{device}.2``, ...).
- **Hostile input.** Payloads that fail to decode, frames on foreign topics, whose device
  differs from the topic's or whose ids start with ``.`` (``..`` would leave DIR) are counted
  in ``rejects`` and logged once per reason; they never raise into the network thread. A
  failure to write (disk full) stops the recording: the command checks ``failure``.

Labels are not recorded: they are ground truth for evaluation, not what edge nodes see.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_sim.fedge_csv import FedgeCsvWriter
from fedge.errors import FedgeError, TopicError
from fedge.topics import SensorTopic, TopicRoot
from fedge.transport import MessageHandler, RejectLog, decoding
from fedge.wire import SensorFrame

log = logging.getLogger(__name__)


@dataclass
class RecordStats:
    """What a recording took in and what it set aside. ``frames`` counts accepted frames."""

    frames: int = 0
    rows: int = 0
    files: int = 0
    duplicates: int = 0
    late: int = 0
    missing: int = 0
    restarts: int = 0


class RecorderError(FedgeError):
    """The recorder could not write its files."""


class _DeviceLog:
    """The frames of one device on their way to disk: reorder buffer, duplicate filter, files."""

    def __init__(self, folder: Path, device: str, window: int, stats: RecordStats) -> None:
        self.waiting_since: float | None = None  # when the oldest pending frame arrived
        self.folder = folder
        self.device = device
        self.window = window
        self.stats = stats
        self.next_seq: int | None = None
        self.pending: dict[int, SensorFrame] = {}
        self.recent: deque[int] = deque(maxlen=4 * window)  # seqs written lately: duplicates
        self.last_time = -math.inf
        self.writer: FedgeCsvWriter | None = None
        self.paths: list[Path] = []

    def add(self, frame: SensorFrame) -> bool:
        """Take a frame; False if it was a duplicate or too late to write."""
        seq = frame.seq
        passed = self.next_seq is not None and seq < self.next_seq
        if seq in self.pending or passed:
            newest = max([self.last_time, *(float(p.times()[-1]) for p in self.pending.values())])
            if frame.t0 <= newest:
                if seq in self.pending or seq in self.recent:
                    self.stats.duplicates += 1
                else:
                    self.stats.late += 1
                return False
            self.drain(force=True)  # a restarted publisher: finish the old run first
            self.stats.restarts += 1
            self.next_seq = seq
        self.pending[seq] = frame
        if self.waiting_since is None:
            self.waiting_since = time.monotonic()
        self.drain(force=False)
        return True

    def drain(self, force: bool) -> None:
        """Write every frame whose turn it is; with ``force`` (or a full buffer) skip gaps.

        The first frames of a device wait until the buffer is full or ``force`` (from ``flush``
        after the wait, or at the end): a recording may start mid-stream, and the frame seen
        first need not be the earliest one.
        """
        if self.next_seq is None:
            if not self.pending or not (force or len(self.pending) > self.window):
                return
            self.next_seq = min(self.pending)
        self._drain(force)
        if not self.pending:
            self.waiting_since = None

    def _drain(self, force: bool) -> None:
        assert self.next_seq is not None  # noqa: S101  # set by drain()
        while self.pending:
            frame = self.pending.pop(self.next_seq, None)
            if frame is not None:
                self._write(frame)
                self.recent.append(self.next_seq)
                self.next_seq += 1
            elif force or len(self.pending) > self.window:
                first = min(self.pending)
                self.stats.missing += first - self.next_seq
                log.warning(
                    "device %s: frames %d..%d never arrived; continuing at %d",
                    self.device,
                    self.next_seq,
                    first - 1,
                    first,
                )
                self.next_seq = first
                self.waiting_since = time.monotonic()  # the next gap gets its own wait
            else:
                return

    def _write(self, frame: SensorFrame) -> None:
        times = frame.times()
        writer = self.writer
        if writer is None or writer.channels != frame.channels or times[0] < self.last_time:
            writer = self._open(frame.channels)
        writer.write(times, np.asarray(frame.values, dtype=np.float32))
        self.last_time = float(times[-1])
        self.stats.rows += frame.rows

    def _open(self, channels: tuple[str, ...]) -> FedgeCsvWriter:
        if self.writer is not None:
            self.writer.close()
            log.warning(
                "device %s changed its channels or went back in time: starting a new file",
                self.device,
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.device}.csv"
        n = 1
        while path.exists():
            n += 1
            path = self.folder / f"{self.device}.{n}.csv"
        self.writer = FedgeCsvWriter(path, channels)
        self.paths.append(path)
        self.stats.files += 1
        return self.writer

    def flush(self, now: float, wait_s: float) -> None:
        """Give up on frames that kept the buffer waiting ``wait_s``; push rows to the file."""
        if self.waiting_since is not None and now - self.waiting_since >= wait_s:
            self.drain(force=True)
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        self.drain(force=True)
        if self.writer is not None:
            self.writer.close()


class Recorder:
    """Receives sensor frames (from any thread) and writes them under ``directory``."""

    def __init__(
        self,
        directory: Path,
        topics: TopicRoot,
        reorder_window: int = 64,
        reorder_wait_s: float = 2.0,
        max_frames: int | None = None,
    ) -> None:
        if reorder_window < 1:
            raise ValueError(f"reorder_window must be >= 1, got {reorder_window}")
        self.directory = directory
        self.topics = topics
        self.reorder_window = reorder_window
        self.reorder_wait_s = reorder_wait_s
        self.max_frames = max_frames
        self.stats = RecordStats()
        self.rejects = RejectLog(log)
        self.done = threading.Event()  # set when max_frames were accepted
        self.failure: RecorderError | None = None
        self._devices: dict[tuple[str, str], _DeviceLog] = {}
        self._lock = threading.Lock()
        self._closed = False

    def handler(self) -> MessageHandler:
        """The message handler to subscribe with: decodes, then ``on_frame``."""
        return decoding(SensorFrame, self.on_frame, self.rejects)

    @property
    def devices(self) -> int:
        return len(self._devices)

    @property
    def nodes(self) -> int:
        return len({node for node, _ in self._devices})

    def on_frame(self, topic: str, frame: SensorFrame) -> None:
        try:
            where = self.topics.parse(topic)
        except TopicError as exc:
            self.rejects.record(topic, str(exc))
            return
        if not isinstance(where, SensorTopic):
            self.rejects.record(topic, "a sensor frame on a topic that is not a sensor topic")
            return
        if where.device != frame.device:
            self.rejects.record(topic, "the frame's device differs from the topic's device")
            return
        if where.node.startswith(".") or where.device.startswith("."):
            # "..", "." or a hidden name would escape DIR or be skipped by replay.
            self.rejects.record(topic, "node or device id starting with '.' cannot be a file name")
            return
        with self._lock:
            if self._closed or self.failure is not None or self.done.is_set():
                return
            key = (where.node, where.device)
            device = self._devices.get(key)
            if device is None:
                folder = self.directory / where.node
                device = _DeviceLog(folder, where.device, self.reorder_window, self.stats)
                self._devices[key] = device
            try:
                accepted = device.add(frame)
            except (OSError, ValueError) as exc:
                self.failure = RecorderError(f"cannot record {where.node}/{where.device}: {exc}")
                return
            if accepted:
                self.stats.frames += 1
                if self.max_frames is not None and self.stats.frames >= self.max_frames:
                    self.done.set()

    def flush(self, now: float | None = None) -> None:
        """Write what waited ``reorder_wait_s`` and push rows to the files (every second)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for device in self._devices.values():
                try:
                    device.flush(now, self.reorder_wait_s)
                except (OSError, ValueError) as exc:
                    self.failure = RecorderError(f"cannot record device {device.device}: {exc}")

    def close(self) -> RecordStats:
        """Write what is still buffered, close every file; later frames are ignored."""
        with self._lock:
            self._closed = True
            for device in self._devices.values():
                device.close()
        return self.stats

    def paths(self) -> list[Path]:
        """Every file written so far."""
        with self._lock:
            return [p for d in self._devices.values() for p in d.paths]
