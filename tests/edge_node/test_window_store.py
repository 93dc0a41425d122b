"""The local window store: tags, keep_every, count and age bounds, restart, corruption, spans."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from edge_node.window_store import StoredWindows, WindowStore
from tests.support import wait_for

W, C = 4, 2
T0 = 1_700_000_000.0


class Clock:
    """A settable node clock."""

    def __init__(self, now: float = 5_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _windows(start: int, count: int) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Windows whose every value is their id, ending one second apart from T0."""
    ids = np.arange(start, start + count)
    windows = np.ascontiguousarray(
        np.broadcast_to(ids[:, None, None], (count, W, C)), dtype=np.float32
    )
    return windows, T0 + ids.astype(np.float64)


def _append(store: WindowStore, device: str, start: int, count: int, **tags: object) -> int:
    windows, end_time = _windows(start, count)
    return store.append(device, windows, end_time, **tags)  # type: ignore[arg-type]


def _ids(selection: StoredWindows) -> list[int]:
    return [int(v) for v in selection.windows[:, 0, 0]]


def _store(
    directory: Path,
    clock: Clock,
    *,
    max_windows: int = 10_000,
    max_age_s: float = 3600.0,
    chunk_windows: int = 25,
    keep_every: int = 1,
    window: int = W,
) -> WindowStore:
    return WindowStore(
        directory,
        max_windows,
        max_age_s,
        chunk_windows,
        window=window,
        channels=C,
        keep_every=keep_every,
        max_queued_chunks=64,  # appends in a tight loop outrun any disk
        clock=clock,
    )


def _chunk_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("chunk-*.npy"))


def test_snapshot_returns_windows_oldest_first_with_their_tags(tmp_path: Path) -> None:
    """Appended windows come back in order with end time, device, score and episode flag."""
    clock = Clock()
    with _store(tmp_path, clock) as store:
        _append(store, "pump-1", 0, 30, score=np.full(30, 0.5, np.float32))
        _append(store, "pump-2", 30, 5, in_episode=True)
        in_memory = store.snapshot(include_episodes=True)

        store.flush()
        on_disk = store.snapshot(include_episodes=True)

    for got in (in_memory, on_disk):
        assert _ids(got) == list(range(35))
        assert got.windows.shape == (35, W, C)
        assert got.windows.dtype == np.float32
        np.testing.assert_array_equal(got.end_time, T0 + np.arange(35))
        assert list(got.device) == ["pump-1"] * 30 + ["pump-2"] * 5
        assert np.all(got.score[:30] == 0.5)
        assert np.all(np.isnan(got.score[30:]))
        assert list(got.in_episode) == [False] * 30 + [True] * 5


def test_keep_every_keeps_every_nth_window_per_device_across_blocks(tmp_path: Path) -> None:
    """keep_every=4 keeps windows 0, 4, 8, ... of each device, whatever the block sizes."""
    with _store(tmp_path, Clock(), keep_every=4) as store:
        start = 0
        kept = 0
        for size in (3, 5, 7, 1, 6):
            kept += _append(store, "pump-1", start, size)
            _append(store, "pump-2", 100 + start, size)
            start += size

        got = store.snapshot()

    ids = np.array(_ids(got))
    assert kept == 6
    assert ids[got.device == "pump-1"].tolist() == [0, 4, 8, 12, 16, 20]
    assert ids[got.device == "pump-2"].tolist() == [100, 104, 108, 112, 116, 120]
    assert store.stats.offered == 44
    assert store.stats.kept == 12


def test_count_bound_prunes_whole_oldest_chunks(tmp_path: Path) -> None:
    """Beyond max_windows the oldest whole chunks go; the most recent windows stay."""
    with _store(tmp_path, Clock(), max_windows=100, chunk_windows=25) as store:
        for start in range(0, 300, 10):
            _append(store, "pump-1", start, 10)
        store.flush()

        got = store.snapshot()
        held = len(store)

    assert 75 < held <= 100
    assert _ids(got) == list(range(300 - held, 300))
    assert len(_chunk_files(tmp_path)) == held // 25
    assert store.stats.chunks_pruned == 12 - held // 25


def test_chunks_never_exceed_a_quarter_of_the_store(tmp_path: Path) -> None:
    """A chunk size above max_windows / 4 is reduced, so pruning never empties the store."""
    with _store(tmp_path, Clock(), max_windows=40, chunk_windows=1024) as store:
        _append(store, "pump-1", 0, 200)
        store.flush()

        held = len(store)

    assert store.chunk_windows == 10
    assert held == 40


def test_age_bound_prunes_old_chunks_and_filters_snapshots(tmp_path: Path) -> None:
    """Windows stored more than max_age_s ago are left out at once and pruned by chunk."""
    clock = Clock(1_000.0)
    with _store(tmp_path, clock, max_age_s=100.0) as store:
        _append(store, "pump-1", 0, 25)
        store.flush()
        clock.now = 1_050.0
        _append(store, "pump-1", 25, 25)
        store.flush()
        clock.now = 1_120.0

        got = store.snapshot()
        removed = store.prune()

        assert _ids(got) == list(range(25, 50))
        assert removed == 25
        assert len(store) == 25
        assert len(_chunk_files(tmp_path)) == 1


def test_reopened_store_holds_the_same_windows(tmp_path: Path) -> None:
    """Closing and reopening the directory gives back the same windows, devices and tags."""
    clock = Clock()
    with _store(tmp_path, clock) as store:
        _append(store, "pump-1", 0, 40, score=np.arange(40, dtype=np.float32))
        _append(store, "pump-2", 40, 7)  # still in memory: close writes it
        before = store.snapshot()

    with _store(tmp_path, clock) as reopened:
        after = reopened.snapshot()
        _append(reopened, "pump-3", 47, 30)
        reopened.flush()
        grown = reopened.snapshot()

    assert _ids(after) == _ids(before) == list(range(47))
    assert list(after.device) == list(before.device)
    np.testing.assert_array_equal(after.score, before.score)
    assert _ids(grown) == list(range(77))
    assert list(grown.device[-30:]) == ["pump-3"] * 30


@pytest.mark.parametrize("damage", ["garbage", "truncated", "deleted"])
def test_damaged_chunk_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """A torn, corrupt or missing chunk costs its own windows and a warning, never a crash."""
    clock = Clock()
    with _store(tmp_path, clock) as store:
        _append(store, "pump-1", 0, 75)
    victim = _chunk_files(tmp_path)[1]
    size = victim.stat().st_size
    if damage == "garbage":
        victim.write_bytes(bytes(range(256)) * (size // 256) + b"\x00" * (size % 256))
    elif damage == "truncated":
        victim.write_bytes(victim.read_bytes()[: size // 2])
    else:
        victim.unlink()

    with caplog.at_level(logging.WARNING), _store(tmp_path, clock) as reopened:
        got = reopened.snapshot()
        again = reopened.snapshot()

    assert _ids(got) == _ids(again) == [*range(25), *range(50, 75)]
    assert victim.name in caplog.text
    assert not victim.exists()
    assert reopened.stats.chunks_corrupt == 1


def test_unreadable_index_starts_an_empty_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A garbage index is reported and the store starts empty, without stray chunk files."""
    clock = Clock()
    with _store(tmp_path, clock) as store:
        _append(store, "pump-1", 0, 50)
    (tmp_path / "index.json").write_bytes(b"\x00{not json")

    with caplog.at_level(logging.WARNING), _store(tmp_path, clock) as reopened:
        held = len(reopened)
        _append(reopened, "pump-1", 0, 25)
        reopened.flush()
        got = reopened.snapshot()

    assert held == 0
    assert "unreadable" in caplog.text
    assert _ids(got) == list(range(25))
    assert len(_chunk_files(tmp_path)) == 1


def test_a_store_for_another_window_shape_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Windows of another shape cannot train this node's model: they are dropped, with a word."""
    clock = Clock()
    with _store(tmp_path, clock) as store:
        _append(store, "pump-1", 0, 50)

    with caplog.at_level(logging.WARNING), _store(tmp_path, clock, window=W + 1) as reopened:
        held = len(reopened)

    assert held == 0
    assert f"holds windows of {W} x {C}" in caplog.text
    assert _chunk_files(tmp_path) == []


def test_files_never_indexed_are_removed_on_open(tmp_path: Path) -> None:
    """A chunk written just before a crash (not in the index) and temp files are cleaned up."""
    clock = Clock()
    with _store(tmp_path, clock) as store:
        _append(store, "pump-1", 0, 25)
    orphan = tmp_path / "chunk-00000099.npy"
    orphan.write_bytes(_chunk_files(tmp_path)[0].read_bytes())
    leftover = tmp_path / ".chunk-00000100.npy.tmp123"
    leftover.write_bytes(b"half")

    with _store(tmp_path, clock) as reopened:
        got = reopened.snapshot()

    assert _ids(got) == list(range(25))
    assert not orphan.exists()
    assert not leftover.exists()


def test_exclusion_spans_apply_to_their_device_only(tmp_path: Path) -> None:
    """Windows of a device ending inside one of its spans are left out; others are kept."""
    with _store(tmp_path, Clock()) as store:
        _append(store, "pump-1", 0, 20)
        _append(store, "pump-2", 0, 20)
        store.flush()

        got = store.snapshot(exclude={"pump-1": [(T0 + 3, T0 + 6), (T0 + 15, T0 + 15)]})

    pump1 = [i for i, d in zip(_ids(got), got.device, strict=True) if d == "pump-1"]
    pump2 = [i for i, d in zip(_ids(got), got.device, strict=True) if d == "pump-2"]
    assert pump1 == [0, 1, 2, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19]
    assert pump2 == list(range(20))


def test_flagged_and_high_scoring_windows_are_excluded_unless_asked(tmp_path: Path) -> None:
    """Episode windows are left out by default; max_score drops windows scoring above it."""
    flags = np.zeros(10, np.bool_)
    flags[[2, 3]] = True
    scores = np.linspace(0.0, 0.9, 10).astype(np.float32)
    with _store(tmp_path, Clock()) as store:
        _append(store, "pump-1", 0, 10, score=scores, in_episode=flags)

        default = store.snapshot()
        everything = store.snapshot(include_episodes=True)
        calm = store.snapshot(max_score=0.55)

    assert _ids(default) == [0, 1, 4, 5, 6, 7, 8, 9]
    assert _ids(everything) == list(range(10))
    assert _ids(calm) == [0, 1, 4, 5]


def test_max_windows_since_and_devices_select_the_most_recent(tmp_path: Path) -> None:
    """max_windows keeps the newest eligible windows; since and devices narrow the choice."""
    with _store(tmp_path, Clock()) as store:
        _append(store, "pump-1", 0, 60)
        store.flush()
        _append(store, "pump-2", 60, 10)

        newest = store.snapshot(max_windows=30)
        recent = store.snapshot(since=T0 + 55, devices=["pump-1"])
        nothing = store.snapshot(devices=["unknown"])

    assert _ids(newest) == list(range(40, 70))
    assert _ids(recent) == list(range(55, 60))
    assert len(nothing) == 0
    assert nothing.windows.shape == (0, W, C)


def test_a_partial_chunk_is_written_after_flush_interval(tmp_path: Path) -> None:
    """An append finding the open chunk older than flush_interval_s hands it to the writer."""
    clock = Clock(0.0)
    store = WindowStore(
        tmp_path, 1000, 3600.0, 25, window=W, channels=C, flush_interval_s=10.0, clock=clock
    )
    try:
        _append(store, "pump-1", 0, 5)
        clock.now = 11.0

        _append(store, "pump-1", 5, 1)

        assert wait_for(lambda: len(_chunk_files(tmp_path)) == 1)
    finally:
        store.close()


def test_a_writer_too_far_behind_costs_whole_chunks_not_a_stall(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With max_queued_chunks waiting for a stuck disk, further full chunks are dropped."""
    store = WindowStore(tmp_path, 1000, 3600.0, 10, window=W, channels=C, max_queued_chunks=2)
    try:
        with caplog.at_level(logging.WARNING), store._io_lock:  # the writer cannot finish
            kept = _append(store, "pump-1", 0, 60)
        store.flush()

        got = store.snapshot()
    finally:
        store.close()

    assert kept == 60
    assert store.stats.windows_dropped >= 30
    assert len(got) == 60 - store.stats.windows_dropped
    assert "disk too slow" in caplog.text


def test_append_refuses_windows_of_the_wrong_shape(tmp_path: Path) -> None:
    """Windows that do not match the store's (w, c) are a programming error: ValueError."""
    with _store(tmp_path, Clock()) as store:
        windows = np.zeros((3, W + 1, C), np.float32)

        with pytest.raises(ValueError, match="do not fit"):
            store.append("pump-1", windows, np.zeros(3))
