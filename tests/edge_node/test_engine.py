"""The inference engine driven from a thread: calibration, exactly-once scoring, hot swap,
messy streams, channel alignment and episodes. No broker: frames are submitted directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from edge_node.detector import EpisodeEvent
from edge_node.engine import ActiveModel, EngineConfig, InferenceEngine
from edge_node.scorer import WindowScorer
from edge_node.state import Calibration
from fedge.transport import RejectLog
from fedge.wire import SensorFrame
from tests.edge_node.inference_support import (
    CHANNELS,
    PERIOD,
    ROWS,
    STRIDE,
    T_START,
    WINDOW,
    Events,
    Exported,
    FrameFactory,
    Journal,
    RecordingScorer,
    active,
    engine_config,
    grid,
    running,
    submit_all,
)
from tests.support import wait_for

C = len(CHANNELS)
FRAMES = 60  # per device: 480 readings, 155 windows on the stride-3 grid
CALIBRATION = 40  # windows; reached within the 17th frame


def _engine(
    config: EngineConfig | None = None,
    *,
    journal: Journal | None = None,
    events: Events | None = None,
    calibration: Calibration | None = None,
) -> InferenceEngine:
    return InferenceEngine(
        CHANNELS,
        config or engine_config(),
        events if events is not None else Events(),
        RejectLog(),
        calibration=calibration,
        on_scored=journal,
    )


def _interleave(*streams: Sequence[SensorFrame]) -> list[SensorFrame]:
    return [frame for group in zip(*streams, strict=True) for frame in group]


def _assert_exactly_once_after_calibration(indices: list[int], readings: int) -> int:
    """The scored windows are the stride grid after the calibration windows, each once."""
    expected = grid(readings)
    calibration = len(expected) - len(indices)
    assert CALIBRATION <= calibration < CALIBRATION + ROWS // STRIDE + 1
    assert indices == expected[calibration:]
    return calibration


def test_every_window_after_calibration_is_scored_exactly_once(
    dense_model: Exported, frames: FrameFactory
) -> None:
    """Each device's first windows calibrate it; every later window is scored once, in order."""
    # Prepare
    journal = Journal()
    engine = _engine(journal=journal)
    engine.offer_model(active(WindowScorer(dense_model.onnx, WINDOW, C)))
    stream = _interleave(frames.stream("pump-1", FRAMES), frames.stream("pump-2", FRAMES))

    # Execute
    with running(engine):
        submit_all(engine, stream)

    # Assert
    calibrated = sum(
        _assert_exactly_once_after_calibration(journal.indices(d), FRAMES * ROWS)
        for d in ("pump-1", "pump-2")
    )
    assert engine.stats.windows_calibration == calibrated
    assert engine.stats.windows_scored == 2 * len(grid(FRAMES * ROWS)) - calibrated
    assert engine.stats.windows_unscored == 0
    assert engine.stats.frames == 2 * FRAMES
    assert engine.model is not None
    assert engine.model.threshold is not None
    assert set(journal.versions("pump-1")) == {1}


def test_hot_swap_mid_stream_changes_model_once_at_a_batch_boundary(
    dense_model: Exported, conv_model: Exported, frames: FrameFactory
) -> None:
    """A model offered mid-stream takes over between two batches; no window is lost or rescored."""
    # Prepare
    journal = Journal()
    engine = _engine(journal=journal)
    engine.offer_model(active(RecordingScorer(dense_model.onnx, journal, version=1)))
    stream = frames.stream("pump-1", 3 * FRAMES)
    first, second, third = stream[:FRAMES], stream[FRAMES : 2 * FRAMES], stream[2 * FRAMES :]

    # Execute
    with running(engine):
        submit_all(engine, first)
        assert wait_for(lambda: len(journal.indices("pump-1")) > 0)
        # As the loader thread does: build the scorer and its threshold off the hot path.
        threshold = engine.threshold_for(WindowScorer(conv_model.onnx, WINDOW, C))
        submit_all(engine, second)
        engine.offer_model(
            active(RecordingScorer(conv_model.onnx, journal, version=2), 2, threshold)
        )
        submit_all(engine, third)

    # Assert
    _assert_exactly_once_after_calibration(journal.indices("pump-1"), 3 * FRAMES * ROWS)
    versions = journal.versions("pump-1")
    switch = versions.index(2)
    assert switch > 0
    assert versions == [1] * switch + [2] * (len(versions) - switch)
    batch_version = 0
    for kind, version, _ in journal.entries:
        if kind == "batch":
            assert version >= batch_version, "a batch went back to the old model"
            batch_version = version
        else:
            assert version == batch_version, "windows of one batch were scored by two models"
    assert engine.stats.swaps == 2
    assert engine.model is not None
    assert (engine.model.version, engine.model.threshold) == (2, threshold)


def test_duplicated_and_reordered_frames_do_not_change_what_is_scored(
    dense_model: Exported, frames: FrameFactory
) -> None:
    """A device whose frames arrive duplicated and shuffled is scored like a clean one."""
    # Prepare
    journal = Journal()
    engine = _engine(journal=journal)
    engine.offer_model(active(WindowScorer(dense_model.onnx, WINDOW, C)))
    clean = frames.stream("clean", FRAMES)
    messy = frames.stream("messy", FRAMES)
    for i in range(1, FRAMES - 3, 5):  # swap neighbours at distance up to 2 (depth is 4)
        messy[i], messy[i + 2] = messy[i + 2], messy[i]
    messy = [m for i, f in enumerate(messy) for m in ([f, f] if i % 7 == 0 else [f])]
    messy += messy[10:14]  # redelivered long after they were consumed

    # Execute
    with running(engine):
        submit_all(engine, clean)
        submit_all(engine, messy)

    # Assert
    assert journal.indices("messy") == journal.indices("clean")
    _assert_exactly_once_after_calibration(journal.indices("messy"), FRAMES * ROWS)
    messy_scores, clean_scores = journal.scores("messy"), journal.scores("clean")
    np.testing.assert_allclose(
        [messy_scores[e] for e in sorted(clean_scores)],
        [clean_scores[e] for e in sorted(clean_scores)],
        rtol=1e-5,
    )
    assert engine.rejects.total == 0


def test_a_gap_in_time_restarts_the_windows(dense_model: Exported, frames: FrameFactory) -> None:
    """After a pause longer than max_gap_s, windows restart: none spans the gap."""
    # Prepare
    journal = Journal()
    engine = _engine(journal=journal)
    engine.offer_model(active(WindowScorer(dense_model.onnx, WINDOW, C)))
    gap_at = 31  # frame; reading 248, off the stride grid
    stream = frames.stream("pump-1", FRAMES, gap_at=gap_at, gap_s=10.0)

    # Execute
    with running(engine):
        submit_all(engine, stream)

    # Assert
    before, after = grid(gap_at * ROWS), grid(FRAMES * ROWS, start=gap_at * ROWS)
    indices = journal.indices("pump-1")
    calibration = len(before) + len(after) - len(indices)
    assert indices == before[calibration:] + after
    assert after[0] == gap_at * ROWS + WINDOW - 1
    assert (after[0] - before[-1]) % STRIDE != 0  # a new grid, not the old one continued


def test_frames_with_other_channels_are_rejected_and_counted(
    dense_model: Exported, frames: FrameFactory
) -> None:
    """Frames whose channels are not the node's are counted by reason and never scored."""
    # Prepare
    journal = Journal()
    engine = _engine(journal=journal)
    engine.offer_model(active(WindowScorer(dense_model.onnx, WINDOW, C)))
    alien = [
        SensorFrame(
            f.device, f.seq, ("vibration", "current", "temperature"), f.values, f.t0, PERIOD
        )
        for f in frames.stream("alien", 25)
    ]
    short = [
        SensorFrame(f.device, f.seq, CHANNELS[:2], f.values[:, :2].copy(), f.t0, PERIOD)
        for f in frames.stream("short", 5)
    ]
    good = frames.stream("pump-1", FRAMES)

    # Execute
    with running(engine):
        submit_all(engine, _interleave(alien, good[:25]))
        submit_all(engine, [*short, *good[25:]])

    # Assert
    assert engine.rejects.total == 30
    counts = sorted(engine.rejects.by_reason.values())
    assert counts == [5, 25]
    assert any("temperature" in reason for reason in engine.rejects.by_reason)
    assert set(journal.scored) == {"pump-1"}
    _assert_exactly_once_after_calibration(journal.indices("pump-1"), FRAMES * ROWS)
    assert engine.stats.frames == 30 + FRAMES


def test_a_permuted_channel_order_is_realigned(dense_model: Exported, frames: FrameFactory) -> None:
    """A device naming the same channels in another order scores as if in the node's order."""
    # Prepare
    journal = Journal()
    engine = _engine(journal=journal)
    engine.offer_model(active(WindowScorer(dense_model.onnx, WINDOW, C)))
    permuted = ("pressure", "vibration", "current")
    stream = _interleave(
        frames.stream("canonical", FRAMES), frames.stream("permuted", FRAMES, channels=permuted)
    )

    # Execute
    with running(engine):
        submit_all(engine, stream)

    # Assert
    canonical, realigned = journal.scores("canonical"), journal.scores("permuted")
    assert sorted(realigned) == sorted(canonical)
    assert len(canonical) > 100
    np.testing.assert_allclose(
        [realigned[e] for e in sorted(canonical)],
        [canonical[e] for e in sorted(canonical)],
        rtol=1e-5,
    )
    assert engine.rejects.total == 0


def test_spikes_open_an_episode_on_their_device_only(
    dense_model: Exported, frames: FrameFactory
) -> None:
    """Spikes on one channel of one device open and close one episode there, none elsewhere."""
    # Prepare
    events = Events()
    engine = _engine(events=events)
    engine.offer_model(active(WindowScorer(dense_model.onnx, WINDOW, C)))
    spikes = range(300, 306)
    stream = _interleave(
        frames.stream("quiet", FRAMES),
        frames.stream("spiky", FRAMES, spikes=spikes, spike_channel=1),
    )

    # Execute
    with running(engine):
        submit_all(engine, stream)

    # Assert
    assert [(e.state, e.device) for e in events.events] == [
        ("open", "spiky"),
        ("closed", "spiky"),
    ]
    closed = events.events[1]
    assert closed.top_channels[0] == "current"
    assert T_START + 300 * PERIOD <= closed.start_time <= T_START + 305 * PERIOD + 1e-6
    assert closed.end_time is not None
    assert T_START + 305 * PERIOD <= closed.end_time <= T_START + (305 + WINDOW) * PERIOD
    assert closed.peak_score > closed.threshold
    assert engine.stats.episodes == 1


def test_without_a_model_ready_windows_are_counted_unscored(
    frames: FrameFactory,
) -> None:
    """Calibration still happens; later windows are counted as unscored, never scored."""
    # Prepare
    journal = Journal()
    engine = _engine(journal=journal)
    snapshots: list[Calibration] = []
    engine.on_calibrated = snapshots.append

    # Execute
    with running(engine):
        submit_all(engine, _interleave(frames.stream("a", 30), frames.stream("b", 30)))

    # Assert
    assert journal.scored == {}
    stats = engine.stats
    assert stats.windows_unscored == 2 * len(grid(30 * ROWS)) - stats.windows_calibration
    assert stats.windows_scored == stats.batches == 0
    assert [sorted(s.devices) for s in snapshots] == [["a"], ["a", "b"]]
    last = engine.snapshot_calibration()
    assert (last.threshold, last.model_version, last.channels) == (None, -1, CHANNELS)
    assert last.windows.shape == (stats.windows_calibration, WINDOW, C)


def test_a_model_offered_without_threshold_after_calibration_gets_one(
    dense_model: Exported, frames: FrameFactory
) -> None:
    """A model whose threshold was computed before calibration finished still gets scored."""
    # Prepare
    journal = Journal()
    engine = _engine(journal=journal)
    scorer = WindowScorer(dense_model.onnx, WINDOW, C)
    stream = frames.stream("pump-1", FRAMES)

    # Execute
    with running(engine):
        stale_threshold = engine.threshold_for(scorer)  # the loader: no calibration set yet
        submit_all(engine, stream[:30])
        assert wait_for(lambda: engine.stats.windows_unscored > 0)
        engine.offer_model(active(scorer, threshold=stale_threshold))
        submit_all(engine, stream[30:])

    # Assert
    assert stale_threshold is None
    assert engine.model is not None
    assert engine.model.threshold == engine.threshold_for(scorer)
    indices = journal.indices("pump-1")
    assert indices == grid(FRAMES * ROWS)[-len(indices) :]
    assert indices[0] <= 30 * ROWS + STRIDE * (ROWS // STRIDE + 1)


def _calibrated(exported: Exported, frames: FrameFactory, *devices: str) -> Calibration:
    """What a node saved after calibrating ``devices``."""
    engine = _engine()
    engine.offer_model(active(WindowScorer(exported.onnx, WINDOW, C)))
    with running(engine):
        submit_all(engine, _interleave(*(frames.stream(d, 20) for d in devices)))
    return engine.snapshot_calibration()


def test_a_restart_with_stored_calibration_scores_from_the_first_window(
    dense_model: Exported, frames: FrameFactory
) -> None:
    """Known devices need no recalibration: the first window is already scored."""
    # Prepare
    stored = _calibrated(dense_model, frames, "pump-1")
    journal = Journal()
    engine = _engine(journal=journal, calibration=stored)
    scorer = WindowScorer(dense_model.onnx, WINDOW, C)
    threshold = engine.threshold_for(scorer)
    engine.offer_model(active(scorer, threshold=threshold))

    # Execute
    with running(engine):
        submit_all(engine, frames.stream("pump-1", 20, first_seq=100))

    # Assert
    assert threshold == stored.threshold
    assert journal.indices("pump-1") == grid(20 * ROWS)
    assert engine.stats.windows_calibration == 0


def test_ready_windows_are_scored_in_micro_batches(
    dense_model: Exported, frames: FrameFactory
) -> None:
    """Queued windows are scored batch_size at a time (a frame's block is never split)."""
    # Prepare
    stored = _calibrated(dense_model, frames, "pump-1", "pump-2")
    journal = Journal()
    engine = _engine(
        engine_config(batch_size=16, max_wait_s=60.0), journal=journal, calibration=stored
    )
    scorer = RecordingScorer(dense_model.onnx, journal, version=1)
    engine.offer_model(active(scorer, threshold=stored.threshold))
    stream = _interleave(frames.stream("pump-1", 30), frames.stream("pump-2", 30))
    submit_all(engine, stream)  # all queued before the thread starts

    # Execute
    with running(engine):
        pass

    # Assert
    sizes = [size for kind, _, size in journal.entries if kind == "batch"]
    assert sum(sizes) == engine.stats.windows_scored == 2 * len(grid(30 * ROWS))
    assert len(sizes) == engine.stats.batches
    assert all(16 <= size < 16 + ROWS // STRIDE + 1 for size in sizes[:-1])
    assert 0 < sizes[-1] < 16 + ROWS // STRIDE + 1


def test_a_partial_batch_is_scored_after_max_wait(
    dense_model: Exported, frames: FrameFactory
) -> None:
    """With fewer ready windows than batch_size, scoring waits at most about max_wait_s."""
    # Prepare
    stored = _calibrated(dense_model, frames, "pump-1")
    journal = Journal()
    engine = _engine(
        engine_config(batch_size=10_000, max_wait_s=0.01), journal=journal, calibration=stored
    )
    scorer = WindowScorer(dense_model.onnx, WINDOW, C)
    engine.offer_model(active(scorer, threshold=stored.threshold))

    # Execute
    with running(engine):
        submit_all(engine, frames.stream("pump-1", 4))
        scored = wait_for(lambda: len(journal.indices("pump-1")) == len(grid(4 * ROWS)), 5.0)

    # Assert
    assert scored, "windows waited for a full batch instead of max_wait_s"
    assert engine.stats.batches >= 1


@pytest.mark.parametrize("stride", [1, 2, 5])
def test_exactly_once_holds_for_any_stride(
    dense_model: Exported, frames: FrameFactory, stride: int
) -> None:
    """The scored windows follow the stride grid whatever the stride."""
    # Prepare
    journal = Journal()
    engine = _engine(engine_config(stride=stride, batch_size=7), journal=journal)
    engine.offer_model(active(WindowScorer(dense_model.onnx, WINDOW, C)))

    # Execute
    with running(engine):
        submit_all(engine, frames.stream("pump-1", 40))

    # Assert
    expected = grid(40 * ROWS, stride=stride)
    indices = journal.indices("pump-1")
    assert indices == expected[len(expected) - len(indices) :]
    assert len(expected) - len(indices) == engine.stats.windows_calibration >= CALIBRATION


def test_calibration_windows_are_handed_on_normalised_with_their_end_times(
    dense_model: Exported, frames: FrameFactory
) -> None:
    """Local learning gets each device's calibration windows, normalised as they will be
    scored, once, when the device is calibrated (they are the node's first training data)."""
    # Prepare
    handed: list[tuple[str, np.ndarray, np.ndarray]] = []
    engine = _engine()
    engine.on_calibration_windows = lambda d, w, t: handed.append((d, w, t))

    # Execute
    with running(engine):
        submit_all(engine, frames.stream("pump-1", FRAMES))

    # Assert
    assert len(handed) == 1
    device, windows, end_time = handed[0]
    assert device == "pump-1"
    assert windows.shape == (engine.stats.windows_calibration, WINDOW, C)
    assert end_time.shape == (windows.shape[0],)
    assert np.all(np.diff(end_time) > 0)
    np.testing.assert_array_equal(windows, engine.calibration_windows())
    norm = engine.normalisation("pump-1")
    assert norm is not None
    assert abs(float(windows.mean())) < 0.5  # normalised, not raw


def test_scored_windows_are_counted_after_their_episodes_are_out(
    dense_model: Exported, frames: FrameFactory
) -> None:
    """Whoever sees ``windows_scored`` cover a window has also been told its episodes."""
    # Prepare
    seen: list[tuple[int, int]] = []
    engine: InferenceEngine

    class Recording(Events):
        def __call__(self, event: EpisodeEvent, model: ActiveModel) -> None:
            seen.append((engine.stats.windows_scored, engine.stats.episodes))
            super().__call__(event, model)

    engine = _engine(events=Recording())
    engine.offer_model(active(WindowScorer(dense_model.onnx, WINDOW, C)))
    stream = frames.stream("spiky", FRAMES, spikes=range(300, 306), spike_channel=1)

    # Execute
    with running(engine):
        submit_all(engine, stream)

    # Assert: when the episode opened, its batch was not yet counted as scored
    assert seen
    windows_then, episodes_then = seen[0]
    assert episodes_then == 1
    assert windows_then < engine.stats.windows_scored
    assert engine.stats.episodes == engine.stats.episodes_closed == 1
