"""The recorder without a broker: order, duplicates, gaps, restarts, new files, hostile input."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from device_sim.csvio import read_recording
from device_sim.recorder import Recorder
from fedge.topics import TopicRoot
from fedge.transport import Message
from fedge.wire import SensorFrame, encode

ROOT = TopicRoot("t/fedge/v1")
TOPIC = str(ROOT.sensors("n1", "pump"))


def _frame(
    seq: int, t0: float | None = None, channels: tuple[str, ...] = ("a", "b")
) -> SensorFrame:
    start = float(seq * 2) if t0 is None else t0
    values = np.full((2, len(channels)), seq, dtype=np.float32)
    stamps = np.array([start, start + 1.0])
    return SensorFrame("pump", seq, channels, values, t0=start, timestamps=stamps)


def _record(tmp_path: Path, seqs: list[int], window: int = 4) -> Recorder:
    recorder = Recorder(tmp_path, ROOT, reorder_window=window)
    for seq in seqs:
        recorder.on_frame(TOPIC, _frame(seq))
    recorder.close()
    return recorder


def _seqs_in(path: Path) -> list[int]:
    values = read_recording(path).values
    return [int(v) for v in values[::2, 0]]


def test_frames_are_written_under_node_and_device(tmp_path: Path) -> None:
    """Frames of n1/pump go to DIR/n1/pump.csv in order, every row, readable by replay."""
    recorder = _record(tmp_path, [0, 1, 2])

    recording = read_recording(tmp_path / "n1" / "pump.csv")

    assert recording.timestamps.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert recording.channels == ("a", "b")
    assert recorder.stats.frames == 3
    assert recorder.stats.rows == 6
    assert recorder.paths() == [tmp_path / "n1" / "pump.csv"]


def test_redelivered_frames_are_dropped_as_duplicates(tmp_path: Path) -> None:
    """A seq seen before (QoS 1 redelivery), written or still buffered, is written once."""
    recorder = _record(tmp_path, [0, 1, 1, 3, 3, 2, 0, 4])

    assert _seqs_in(tmp_path / "n1" / "pump.csv") == [0, 1, 2, 3, 4]
    assert recorder.stats.duplicates == 3


def test_out_of_order_frames_are_written_in_seq_order(tmp_path: Path) -> None:
    """Frames arriving out of order within the reorder window are put back in order."""
    _record(tmp_path, [1, 0, 4, 2, 3, 5])

    assert _seqs_in(tmp_path / "n1" / "pump.csv") == [0, 1, 2, 3, 4, 5]


def test_gaps_are_given_up_after_the_window_and_counted(tmp_path: Path) -> None:
    """A frame that never arrives is counted missing; a later arrival of it is dropped as late."""
    recorder = _record(tmp_path, [0, 2, 3, 4, 5, 6, 1, 7], window=4)

    assert _seqs_in(tmp_path / "n1" / "pump.csv") == [0, 2, 3, 4, 5, 6, 7]
    assert recorder.stats.missing == 1
    assert recorder.stats.late == 1


def test_a_restarted_publisher_continues_the_same_file(tmp_path: Path) -> None:
    """seq going back to 0 with later timestamps is a restart, not a duplicate."""
    recorder = Recorder(tmp_path, ROOT)
    for seq in (0, 1, 2):
        recorder.on_frame(TOPIC, _frame(seq))
    for seq in (0, 1):
        recorder.on_frame(TOPIC, _frame(seq, t0=100.0 + 2 * seq))
    recorder.close()

    times = read_recording(tmp_path / "n1" / "pump.csv").timestamps.tolist()

    assert times == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 100.0, 101.0, 102.0, 103.0]
    assert recorder.stats.restarts == 1
    assert recorder.stats.duplicates == 0


def test_a_channel_change_starts_a_new_file_and_old_files_are_kept(tmp_path: Path) -> None:
    """New channels go to pump.3.csv when pump.csv exists from before and pump.2.csv is taken."""
    (tmp_path / "n1").mkdir()
    (tmp_path / "n1" / "pump.csv").write_text("an earlier recording")
    recorder = Recorder(tmp_path, ROOT)

    recorder.on_frame(TOPIC, _frame(0))
    recorder.on_frame(TOPIC, _frame(1, channels=("a", "b", "c")))
    recorder.close()

    assert (tmp_path / "n1" / "pump.csv").read_text() == "an earlier recording"
    assert read_recording(tmp_path / "n1" / "pump.2.csv").channels == ("a", "b")
    assert read_recording(tmp_path / "n1" / "pump.3.csv").channels == ("a", "b", "c")
    assert recorder.stats.files == 2


def test_hostile_input_is_counted_and_never_written(tmp_path: Path) -> None:
    """Garbage, a device that is not the topic's, and '..' ids are rejected without raising."""
    recorder = Recorder(tmp_path / "rec", ROOT)
    handle = recorder.handler()

    handle(Message(TOPIC, b"\x00garbage"))
    handle(Message(str(ROOT.sensors("n1", "other")), encode(_frame(0))))
    handle(Message("t/fedge/v1/sensors/../pump", encode(_frame(0))))
    handle(Message("elsewhere/sensors/n1/pump", encode(_frame(0))))
    handle(Message(TOPIC, encode(_frame(0))))
    recorder.close()

    assert recorder.rejects.total == 4
    assert recorder.stats.frames == 1
    assert sorted(p.name for p in (tmp_path / "rec").rglob("*")) == ["n1", "pump.csv"]


def test_max_frames_sets_done_and_ignores_the_rest(tmp_path: Path) -> None:
    """After max_frames accepted frames the recorder signals done and records no more."""
    recorder = Recorder(tmp_path, ROOT, max_frames=2)

    for seq in range(5):
        recorder.on_frame(TOPIC, _frame(seq))
    recorder.close()

    assert recorder.done.is_set()
    assert _seqs_in(tmp_path / "n1" / "pump.csv") == [0, 1]


def test_flush_gives_up_waiting_after_the_reorder_wait(tmp_path: Path) -> None:
    """A slow device's first frames and a gap are written once they waited reorder_wait_s."""
    recorder = Recorder(tmp_path, ROOT, reorder_window=64, reorder_wait_s=2.0)
    path = tmp_path / "n1" / "pump.csv"
    recorder.on_frame(TOPIC, _frame(0))
    recorder.on_frame(TOPIC, _frame(2))

    recorder.flush(now=time.monotonic())
    written_early = path.exists()
    recorder.flush(now=time.monotonic() + 2.5)

    assert not written_early
    assert _seqs_in(path) == [0, 2]
    assert recorder.stats.missing == 1
    recorder.close()
