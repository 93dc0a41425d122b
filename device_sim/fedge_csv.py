"""fedge CSV: the file format ``fedge record`` writes and ``fedge replay`` plays back exactly.

::

    timestamp,vibration,current,label:anomaly
    1583748873.0,0.0265878,1.3302,0
    1583748874.0,0.0261697,1.35399,1

- ``,``-separated UTF-8, ``\\n`` line ends, one header line; names that need it are quoted.
- ``timestamp`` first: seconds since the Unix epoch, written as the shortest decimal that reads
  back as the same float64.
- then one column per channel: the shortest decimal that reads back as the same float32 when
  parsed as float64 and rounded to float32 (the reader's rule), so values round-trip bit-exactly.
- then optional ``label:NAME`` columns holding integers 0-255 (ground truth).

Writing checks every formatted number by reading it back, and falls back to the exact float64
decimal of a value in the (theoretical) case where the short form would not round-trip.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Final, TextIO

import numpy as np
from numpy.typing import NDArray

TIME_COLUMN: Final = "timestamp"
LABEL_PREFIX: Final = "label:"
DELIMITER: Final = ","


def header(channels: tuple[str, ...], label_names: tuple[str, ...] = ()) -> list[str]:
    """The header fields of a fedge CSV file with these channels and labels."""
    for name in channels:
        if name.startswith(LABEL_PREFIX) or name == TIME_COLUMN:
            raise ValueError(f"channel name {name!r} would read back as a label or the time")
    return [TIME_COLUMN, *channels, *(LABEL_PREFIX + n for n in label_names)]


def format_float64(values: NDArray[np.float64]) -> NDArray[np.str_]:
    """Shortest decimals that parse back to exactly these float64 values."""
    text = values.astype(str)
    wrong = text.astype(np.float64).view(np.uint64) != values.view(np.uint64)
    if wrong.any():  # pragma: no cover - numpy prints shortest round-trip reprs already
        text = text.astype(object)
        text[wrong] = [repr(float(v)) for v in values[wrong]]
    return text.astype(str)


def format_float32(values: NDArray[np.float32]) -> NDArray[np.str_]:
    """Shortest decimals that read back as exactly these float32 values via float64."""
    text = values.astype(str)
    back = text.astype(np.float64).astype(np.float32)
    wrong = back.view(np.uint32) != values.view(np.uint32)
    if wrong.any():
        # Exact as float64, hence exact after rounding to float32: always safe, just longer.
        text = text.astype(object)
        text[wrong] = [repr(float(v)) for v in values[wrong]]
    return text.astype(str)


def format_rows(
    timestamps: NDArray[np.float64],
    values: NDArray[np.float32],
    labels: NDArray[np.uint8] | None = None,
) -> str:
    """The data lines for a block of rows, each ending in ``\\n``."""
    columns = [format_float64(timestamps)[:, None], format_float32(values)]
    if labels is not None:
        columns.append(labels.astype(str))
    table = np.concatenate(columns, axis=1).tolist()
    return "".join(DELIMITER.join(row) + "\n" for row in table)


class FedgeCsvWriter:
    """Appends rows to one fedge CSV file; the header is written on creation.

    The file is created exclusively: an existing file is never overwritten. Rows are formatted
    in batches of ``batch_rows`` (numpy's per-call overhead dominates small frames), so they
    reach the file on ``flush``, ``close`` or when a batch is full.
    """

    def __init__(
        self,
        path: Path,
        channels: tuple[str, ...],
        label_names: tuple[str, ...] = (),
        batch_rows: int = 4096,
    ) -> None:
        self.path = path
        self.channels = channels
        self.label_names = label_names
        self.batch_rows = batch_rows
        self.rows = 0
        fields = header(channels, label_names)
        self._batch: list[tuple[NDArray[np.float64], NDArray[np.float32], NDArray[np.uint8] | None]]
        self._batch = []
        self._batched = 0
        self._file: TextIO = path.open("x", encoding="utf-8", newline="")
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=DELIMITER, lineterminator="\n").writerow(fields)
        self._file.write(buffer.getvalue())

    def write(
        self,
        timestamps: NDArray[np.float64],
        values: NDArray[np.float32],
        labels: NDArray[np.uint8] | None = None,
    ) -> None:
        rows = int(timestamps.shape[0])
        if values.shape != (rows, len(self.channels)):
            raise ValueError(f"values {values.shape} do not match the file's channels")
        if (labels is None) != (not self.label_names):
            raise ValueError("labels must be given exactly when the file has label columns")
        self._batch.append((timestamps, values, labels))
        self._batched += rows
        self.rows += rows
        if self._batched >= self.batch_rows:
            self._write_batch()

    def _write_batch(self) -> None:
        if not self._batch:
            return
        times, values, labels = zip(*self._batch, strict=True)
        label_block = None if labels[0] is None else np.concatenate(labels)
        self._file.write(format_rows(np.concatenate(times), np.concatenate(values), label_block))
        self._batch.clear()
        self._batched = 0

    def flush(self) -> None:
        """Write the batched rows and hand them to the operating system."""
        self._write_batch()
        self._file.flush()

    def close(self) -> None:
        self._write_batch()
        self._file.close()
