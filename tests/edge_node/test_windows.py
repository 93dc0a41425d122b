"""Per-device sliding windows: stride grid, numbering, reordering, duplicates and gaps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from edge_node.windows import DeviceWindows, WindowBlock, WindowConfig
from fedge.wire import SensorFrame
from tests.edge_node.inference_support import CHANNELS, PERIOD, T_START, FrameFactory, grid, signal


def _stream(config: WindowConfig) -> DeviceWindows:
    return DeviceWindows("pump-1", len(CHANNELS), config)


def _feed(stream: DeviceWindows, frames: Sequence[SensorFrame]) -> list[WindowBlock]:
    return [block for frame in frames for block in stream.add(frame)]


def _ends(blocks: Sequence[WindowBlock]) -> list[int]:
    return [int(e) for block in blocks for e in block.end_index]


def _raw(blocks: Sequence[WindowBlock]) -> np.ndarray:
    return np.concatenate([block.raw for block in blocks])


@pytest.mark.parametrize(
    "config",
    [
        {"window": 1},
        {"stride": 0},
        {"reorder_frames": -1},
        {"max_gap_s": 0.0},
    ],
)
def test_invalid_window_configuration_is_refused(config: dict[str, Any]) -> None:
    """A window shorter than 2, a stride below 1, a negative depth or gap raise ValueError."""
    with pytest.raises(ValueError, match="invalid window configuration"):
        replace(WindowConfig(), **config)


@pytest.mark.parametrize("rows", [1, 3, 8, 40])
@pytest.mark.parametrize("stride", [1, 3, 5])
def test_windows_are_the_stream_sliced_on_the_stride_grid_whatever_the_framing(
    rows: int, stride: int
) -> None:
    """Every window ending on the stride grid comes out once, holding exactly its readings."""
    # Prepare
    factory = FrameFactory(rows=rows)
    count = 120 // rows
    stream = _stream(WindowConfig(window=16, stride=stride))
    readings = signal(0, count * rows)
    times = T_START + PERIOD * np.arange(count * rows)

    # Execute
    blocks = _feed(stream, factory.stream("pump-1", count))

    # Assert
    ends = _ends(blocks)
    assert ends == grid(count * rows, 16, stride)
    expected = np.stack([readings[e - 15 : e + 1] for e in ends])
    np.testing.assert_array_equal(_raw(blocks), expected)
    np.testing.assert_allclose(np.concatenate([b.end_time for b in blocks]), times[ends])
    assert all(b.raw.dtype == np.float32 and b.raw.flags.c_contiguous for b in blocks)
    assert sum(b.count for b in blocks) == stream.stats.windows == len(ends)
    assert all(b.device == "pump-1" for b in blocks)


def test_a_frame_yields_at_most_one_block_with_all_its_windows() -> None:
    """A frame completing several windows returns them together as one (k, w, c) block."""
    # Prepare
    stream = _stream(WindowConfig(window=4, stride=2))
    frame = SensorFrame(
        "pump-1", 0, CHANNELS, signal(0, 10), t0=T_START, timestamps=T_START + np.arange(10.0)
    )

    # Execute
    blocks = stream.add(frame)

    # Assert
    assert len(blocks) == 1
    assert blocks[0].raw.shape == (4, 4, 3)
    assert blocks[0].end_index.tolist() == [3, 5, 7, 9]
    assert blocks[0].end_time.tolist() == (T_START + np.array([3.0, 5.0, 7.0, 9.0])).tolist()


def test_frames_shorter_than_the_window_wait_for_enough_readings() -> None:
    """No window is emitted until ``window`` readings have arrived."""
    # Prepare
    stream = _stream(WindowConfig(window=16, stride=1))
    frames = FrameFactory(rows=5).stream("pump-1", 4)

    # Execute
    per_frame = [stream.add(frame) for frame in frames]

    # Assert
    assert [len(blocks) for blocks in per_frame] == [0, 0, 0, 1]
    assert per_frame[3][0].end_index.tolist() == [15, 16, 17, 18, 19]


def test_reordered_frames_within_the_reorder_depth_give_the_in_order_windows(
    frames: FrameFactory,
) -> None:
    """Frames swapped within the reorder buffer produce the same windows as in order."""
    # Prepare
    in_order = frames.stream("pump-1", 20)
    shuffled = list(in_order)
    for i in range(2, 18, 4):
        shuffled[i], shuffled[i + 2] = shuffled[i + 2], shuffled[i]
    reference = _feed(_stream(WindowConfig(window=16, stride=3, reorder_frames=2)), in_order)
    stream = _stream(WindowConfig(window=16, stride=3, reorder_frames=2))

    # Execute
    blocks = _feed(stream, shuffled)

    # Assert
    assert _ends(blocks) == _ends(reference)
    np.testing.assert_array_equal(_raw(blocks), _raw(reference))
    assert (stream.stats.gaps, stream.stats.missing_frames) == (0, 0)


def test_duplicates_and_stale_frames_are_counted_and_change_nothing(
    frames: FrameFactory,
) -> None:
    """A copy of a held frame is a duplicate, of a consumed frame stale; neither adds windows."""
    # Prepare
    clean = frames.stream("pump-1", 12)
    messy = [*clean[:3], clean[1], clean[4], clean[4], clean[3], *clean[5:], clean[0]]
    reference = _feed(_stream(WindowConfig(window=16, stride=1)), clean)
    stream = _stream(WindowConfig(window=16, stride=1))

    # Execute
    blocks = _feed(stream, messy)

    # Assert
    assert _ends(blocks) == _ends(reference)
    np.testing.assert_array_equal(_raw(blocks), _raw(reference))
    assert stream.stats.frames == len(messy)
    assert (stream.stats.duplicates, stream.stats.stale) == (1, 2)
    assert stream.stats.gaps == 0


def test_a_frame_missing_beyond_the_reorder_depth_resets_the_window(frames: FrameFactory) -> None:
    """When more frames are held than the depth allows, the missing one is given up: a gap."""
    # Prepare
    stream = _stream(WindowConfig(window=16, stride=1, reorder_frames=2))
    sent = [f for f in frames.stream("pump-1", 10) if f.seq != 4]

    # Execute
    blocks = _feed(stream, sent[:5])  # seqs 0-3, then 5: held while 4 may still come
    held = _ends(blocks)
    blocks += _feed(stream, sent[5:])  # 6, 7: three held > depth 2, so 4 is given up
    late = stream.add(frames.frame("pump-1", 4))

    # Assert
    assert held == grid(32, 16, 1)
    after = _ends(blocks)[len(held) :]
    # Readings are numbered as received: 32 before the gap, then a new run of 40.
    assert after == list(range(32 + 15, 72))
    assert all(e > 31 for e in after)
    assert (stream.stats.gaps, stream.stats.missing_frames) == (1, 1)
    assert late == []
    assert stream.stats.stale == 1


def test_a_jump_in_time_beyond_max_gap_resets_the_window(frames: FrameFactory) -> None:
    """A time gap longer than max_gap_s starts a new run: no window spans the gap."""
    # Prepare
    stream = _stream(WindowConfig(window=16, stride=3, max_gap_s=1.0))
    sent = frames.stream("pump-1", 12, gap_at=6, gap_s=30.0)

    # Execute
    blocks = _feed(stream, sent)

    # Assert
    ends = _ends(blocks)
    assert ends == grid(48, 16, 3) + grid(96, 16, 3, start=48)
    assert stream.stats.gaps == 1
    assert stream.stats.missing_frames == 0
    times = np.concatenate([b.end_time for b in blocks])
    assert times[-1] == pytest.approx(T_START + 95 * PERIOD + 30.0)


def test_a_gap_inside_one_frame_resets_the_window() -> None:
    """A device that batched readings across an outage: the gap is inside one frame, and no
    window spans it either (SKAB runs have such 54-76 s gaps)."""
    # Prepare
    stream = _stream(WindowConfig(window=16, stride=1, max_gap_s=1.0))
    rows = 80
    stamps = T_START + np.arange(rows, dtype=np.float64) * PERIOD
    stamps[40:] += 30.0  # the outage, between readings 39 and 40
    values = np.random.default_rng(0).normal(size=(rows, len(CHANNELS))).astype(np.float32)
    frame = SensorFrame("pump-1", 0, CHANNELS, values, t0=float(stamps[0]), timestamps=stamps)

    # Execute
    blocks = _feed(stream, [frame])

    # Assert: windows end at 15..39, then again from 40 + 15 on; none straddles the gap
    assert _ends(blocks) == list(range(15, 40)) + list(range(55, 80))
    assert stream.stats.gaps == 1
    raw = _raw(blocks)
    np.testing.assert_array_equal(raw[25], values[40:56])  # the first window after the gap


def test_a_time_step_within_max_gap_is_not_a_gap(frames: FrameFactory) -> None:
    """Readings just under max_gap_s apart still belong to one run."""
    # Prepare
    stream = _stream(WindowConfig(window=16, stride=1, max_gap_s=1.0))
    sent = frames.stream("pump-1", 6, gap_at=3, gap_s=0.99 - PERIOD)

    # Execute
    blocks = _feed(stream, sent)

    # Assert
    assert _ends(blocks) == grid(48, 16, 1)
    assert stream.stats.gaps == 0


def test_a_stream_may_start_at_any_sequence_number(frames: FrameFactory) -> None:
    """The first frame seen sets the expected sequence; numbering starts at its readings."""
    # Prepare
    stream = _stream(WindowConfig(window=16, stride=1))

    # Execute
    blocks = _feed(stream, frames.stream("pump-1", 3, first_seq=1000))

    # Assert
    assert _ends(blocks) == grid(24, 16, 1)
    assert stream.stats.stale == 0


def test_a_restarted_publisher_starts_a_new_stream(frames: FrameFactory) -> None:
    """Sequence numbers starting again while time moves on is a restart, not a redelivery."""
    # Prepare
    stream = _stream(WindowConfig(window=16, stride=1))
    before = frames.stream("pump-1", 6)
    restarted = [frames.frame("pump-1", seq, shift_s=60.0) for seq in range(4)]

    # Execute
    _feed(stream, before)
    blocks = _feed(stream, restarted)

    # Assert
    assert stream.stats.restarts == 1
    assert stream.stats.stale == 0
    assert len(_ends(blocks)) == 4 * frames.rows - 16 + 1  # windows of the new run only


def test_a_sequence_far_behind_is_a_restart_even_without_newer_time(frames: FrameFactory) -> None:
    """A sequence number further back than any redelivery could reach also starts a new stream."""
    # Prepare
    stream = _stream(WindowConfig(window=16, stride=1, restart_frames=3))
    late_start = [frames.frame("pump-1", seq) for seq in range(10, 14)]

    # Execute
    _feed(stream, late_start)
    redelivery = stream.add(frames.frame("pump-1", 12))
    replayed = _feed(stream, [frames.frame("pump-1", seq) for seq in range(4)])

    # Assert
    assert redelivery == []
    assert stream.stats.stale == 1
    assert stream.stats.restarts == 1
    assert len(_ends(replayed)) == 4 * frames.rows - 16 + 1
