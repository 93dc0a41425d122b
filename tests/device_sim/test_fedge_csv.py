"""fedge CSV: what the recorder writes reads back bit-exactly, and files are never overwritten."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_sim.csvio import read_recording
from device_sim.fedge_csv import FedgeCsvWriter, format_float32
from device_sim.recording import CsvKind
from tests.device_sim.recordings import tricky_float32


def test_written_rows_read_back_bit_exactly(tmp_path: Path) -> None:
    """Random float32 bit patterns, subnormals, ±0 and extremes survive a write and a read."""
    values = tricky_float32(500, 4)
    times = 1.7e9 + np.cumsum(np.random.default_rng(1).random(500)) / 7.0
    labels = np.arange(1000, dtype=np.int64).reshape(500, 2).astype(np.uint8)
    writer = FedgeCsvWriter(tmp_path / "r.csv", ("a", "b,c", 'q"d', "e f"), ("anomaly", "x"))

    writer.write(times[:123], values[:123], labels[:123])
    writer.write(times[123:], values[123:], labels[123:])
    writer.close()
    recording = read_recording(tmp_path / "r.csv")

    assert recording.kind is CsvKind.FEDGE
    assert recording.channels == ("a", "b,c", 'q"d', "e f")
    assert recording.label_names == ("anomaly", "x")
    assert recording.timestamps.view(np.uint64).tolist() == times.view(np.uint64).tolist()
    assert np.array_equal(recording.values.view(np.uint32), values.view(np.uint32))
    assert recording.labels is not None
    assert np.array_equal(recording.labels, labels)


def test_values_are_written_in_their_shortest_float32_form(tmp_path: Path) -> None:
    """A float32 0.1 is written as 0.1, not as the 17 digits of its float64 widening."""
    text = format_float32(np.array([0.1, 0.0265878, 1e-45], dtype=np.float32))

    assert text.tolist() == ["0.1", "0.0265878", "1e-45"]


def test_writer_never_overwrites_a_file(tmp_path: Path) -> None:
    """Creating a writer on an existing path fails instead of replacing the recording."""
    path = tmp_path / "r.csv"
    path.write_text("keep me")

    with pytest.raises(FileExistsError):
        FedgeCsvWriter(path, ("a",))

    assert path.read_text() == "keep me"


def test_channel_names_that_would_read_back_differently_are_refused(tmp_path: Path) -> None:
    """A channel called `timestamp` or `label:x` cannot be written as a channel column."""
    for name in ("timestamp", "label:x"):
        with pytest.raises(ValueError, match="would read back"):
            FedgeCsvWriter(tmp_path / f"{name.replace(':', '_')}.csv", (name,))
