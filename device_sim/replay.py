"""Replaying recordings: slice them into frames, merge the devices in time, publish paced.

Each recording becomes a stream of ``SensorFrame``s of ``frame_size`` rows with explicit
timestamps (recordings may be irregular), ``seq`` counting from 0 per device, plus a
``LabelFrame`` with the same ``seq`` when the file has labels. A frame is due when its last row
was recorded, the moment a real device that batches readings would send it. All devices'
frames are merged by due time (ties: in the order the files were given) and published when
due at ``speed`` x real time, or as fast as the broker acknowledges them.

``align="start"`` shifts each recording's schedule, not its data, so that all recordings start
together: independent runs (SKAB's files follow each other over a day) then play as a
concurrent fleet. Published timestamps are always the recorded ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from device_sim.publish import FramePublisher, Pacer
from device_sim.recording import Recording
from device_sim.sources import Source
from fedge.wire import LabelFrame, SensorFrame

ALIGNMENTS: Final = ("none", "start")


@dataclass(frozen=True)
class Scheduled:
    """One frame (and its labels) for ``node``, due at data time ``due``."""

    due: float
    order: int
    node: str
    frame: SensorFrame
    labels: LabelFrame | None


def frames(
    recording: Recording, device: str, frame_size: int
) -> Iterator[tuple[SensorFrame, LabelFrame | None]]:
    """The recording as consecutive frames of up to ``frame_size`` rows, ``seq`` from 0."""
    if frame_size < 1:
        raise ValueError(f"frame_size must be >= 1, got {frame_size}")
    times = recording.timestamps
    for seq, start in enumerate(range(0, recording.rows, frame_size)):
        stop = start + frame_size
        stamps = times[start:stop]
        t0 = float(stamps[0])
        frame = SensorFrame(
            device,
            seq,
            recording.channels,
            recording.values[start:stop],
            t0=t0,
            timestamps=stamps,
        )
        labels = None
        if recording.labels is not None:
            labels = LabelFrame(
                device,
                seq,
                recording.label_names,
                recording.labels[start:stop],
                t0=t0,
                timestamps=stamps,
            )
        yield frame, labels


def schedule(
    sources: Sequence[Source], frame_size: int, align: str = "none"
) -> Iterator[Scheduled]:
    """Every source's frames, merged by due time."""
    if align not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, got {align!r}")
    origin = min((s.recording.start for s in sources), default=0.0)

    def stream(order: int, source: Source) -> Iterator[Scheduled]:
        shift = source.recording.start - origin if align == "start" else 0.0
        for frame, labels in frames(source.recording, source.device, frame_size):
            due = float(frame.times()[-1]) - shift
            yield Scheduled(due, order, source.node, frame, labels)

    streams = [stream(i, s) for i, s in enumerate(sources)]
    return heapq.merge(*streams, key=lambda item: (item.due, item.order))


def play(
    items: Iterator[Scheduled],
    publisher: FramePublisher,
    pacer: Pacer,
    on_frame: Callable[[Scheduled], None] | None = None,
) -> None:
    """Publish every scheduled frame when it is due; ``on_frame`` hears of each one sent."""
    for item in items:
        pacer.wait_until(item.due)
        publisher.send(item.node, item.frame, item.labels)
        if on_frame is not None:
            on_frame(item)
