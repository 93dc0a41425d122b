"""Replay without a broker: frame slicing, timestamp merge order, alignment, publishing."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from device_sim.publish import FramePublisher, Pacer
from device_sim.recording import CsvKind, Recording
from device_sim.replay import frames, play, schedule
from device_sim.sources import Source
from fedge.topics import TopicRoot
from fedge.transport import InMemoryHub, RejectLog, decoding
from fedge.wire import LabelFrame, SensorFrame


def _recording(times: list[float], labelled: bool = True) -> Recording:
    n = len(times)
    values = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    labels = (np.arange(n) % 2).astype(np.uint8).reshape(n, 1) if labelled else None
    return Recording(
        path=Path("x.csv"),
        kind=CsvKind.GENERIC,
        channels=("a", "b"),
        timestamps=np.array(times, dtype=np.float64),
        values=values,
        label_names=("anomaly",) if labelled else (),
        labels=labels,
    )


def test_frames_slice_rows_with_explicit_timestamps_and_matching_labels() -> None:
    """Frames hold frame_size rows (the last fewer), explicit times, seq from 0, same-seq labels."""
    recording = _recording([0.0, 1.0, 1.5, 4.0, 4.0, 9.0, 10.0])

    out = list(frames(recording, "dev", 3))

    assert [f.seq for f, _ in out] == [0, 1, 2]
    assert [f.rows for f, _ in out] == [3, 3, 1]
    assert out[1][0].timestamps is not None
    assert out[1][0].timestamps.tolist() == [4.0, 4.0, 9.0]
    assert out[1][0].t0 == 4.0
    assert np.array_equal(np.concatenate([f.values for f, _ in out]), recording.values)
    assert all(lab is not None and lab.seq == f.seq for f, lab in out)
    labels = np.concatenate([lab.values for _, lab in out if lab is not None])
    assert recording.labels is not None
    assert np.array_equal(labels, recording.labels)


def test_schedule_merges_devices_by_send_time() -> None:
    """Frames from all devices come out ordered by their last row's time, ties by file order."""
    a = Source("n1", "a", _recording([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]))
    b = Source("n2", "b", _recording([0.5, 1.0, 4.5, 5.0]))

    order = [(item.frame.device, item.frame.seq, item.due) for item in schedule([a, b], 2)]

    assert order == [("a", 0, 1.0), ("b", 0, 1.0), ("a", 1, 3.0), ("a", 2, 5.0), ("b", 1, 5.0)]


def test_align_start_plays_recordings_together_without_changing_data() -> None:
    """align=start shifts each file's schedule to a common start; published times are original."""
    early = Source("n1", "early", _recording([100.0, 101.0, 102.0, 103.0]))
    late = Source("n2", "late", _recording([5000.0, 5001.0, 5002.0, 5003.0]))

    items = list(schedule([early, late], 2, align="start"))

    assert [(i.frame.device, i.due) for i in items] == [
        ("early", 101.0),
        ("late", 101.0),
        ("early", 103.0),
        ("late", 103.0),
    ]
    assert items[1].frame.t0 == 5000.0


def test_play_publishes_every_frame_and_label_on_their_topics() -> None:
    """Through the in-memory hub, frames arrive on sensors/{node}/{device}, labels on labels/."""
    hub = InMemoryHub()
    root = TopicRoot("t/fedge/v1")
    sensors: list[tuple[str, SensorFrame]] = []
    labels: list[tuple[str, LabelFrame]] = []
    rejects = RejectLog()
    listener = hub.connect()
    listener.subscribe(
        root.sensors_filter(), decoding(SensorFrame, lambda t, f: sensors.append((t, f)), rejects)
    )
    listener.subscribe(
        root.labels_filter(), decoding(LabelFrame, lambda t, f: labels.append((t, f)), rejects)
    )
    publisher = FramePublisher(hub.connect(), root)
    source = Source("n1", "dev", _recording([float(i) for i in range(25)]))

    play(schedule([source], 10), publisher, Pacer(math.inf))

    assert [t for t, _ in sensors] == ["t/fedge/v1/sensors/n1/dev"] * 3
    assert [t for t, _ in labels] == ["t/fedge/v1/labels/n1/dev"] * 3
    assert sum(f.rows for _, f in sensors) == 25
    assert [f.seq for _, f in labels] == [0, 1, 2]
    assert publisher.stats.readings == 25
    assert rejects.total == 0


def test_speed_paces_frames_by_their_data_time() -> None:
    """At speed 20, frames due two data-seconds apart are published at least 0.1 s apart."""
    hub = InMemoryHub()
    sent_at: list[float] = []
    publisher = FramePublisher(hub.connect(), TopicRoot())
    source = Source("n1", "dev", _recording([0.0, 1.0, 2.0]))

    play(
        schedule([source], 1), publisher, Pacer(20.0), lambda item: sent_at.append(time.monotonic())
    )

    assert len(sent_at) == 3
    assert sent_at[2] - sent_at[0] >= 0.1 - 1e-3
