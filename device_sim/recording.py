"""A recorded sensor run as one value, and the error that points at the line that broke it.

A ``Recording`` is what one CSV file holds once parsed and validated: ``n`` timestamps
(float64 seconds since the Unix epoch, never decreasing), an ``n x c`` float32 block of channel
values and, optionally, an ``n x k`` uint8 block of ground-truth labels. Which node and device
it is replayed as is not part of the file's content; ``device_sim.sources`` decides that.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from fedge.errors import FedgeError


class CsvKind(StrEnum):
    """The layouts the reader recognises (see ``device_sim.csvio``)."""

    FEDGE = "fedge"  # written by ``fedge record``: ``,``, ``timestamp`` first, ``label:`` columns
    SKAB = "skab"  # ``;``, ``datetime`` first, ``anomaly``/``changepoint`` labels
    GENERIC = "generic"  # anything else, described by command-line options


class RecordingError(FedgeError):
    """A recording file cannot be read or holds bad data; the message names file and line.

    ``line`` is the 1-based physical line of the file (``None`` when the whole file is at fault),
    ``column`` the header name of the offending column, ``value`` the text found there.
    """

    def __init__(
        self,
        path: Path,
        reason: str,
        line: int | None = None,
        column: str | None = None,
        value: str | None = None,
    ) -> None:
        where = str(path) if line is None else f"{path}:{line}"
        what = "" if column is None else f"column {column!r}: "
        super().__init__(f"{where}: {what}{reason}")
        self.path = path
        self.reason = reason
        self.line = line
        self.column = column
        self.value = value


@dataclass(frozen=True, eq=False)
class Recording:
    """The validated content of one recording file.

    ``bad_rows`` counts rows skipped under ``skip_bad_rows`` and ``first_bad`` describes the
    first of them (file, line and reason), so a summary can say what was wrong without a
    line of output per row.
    """

    path: Path
    kind: CsvKind
    channels: tuple[str, ...]
    timestamps: NDArray[np.float64]
    values: NDArray[np.float32]
    label_names: tuple[str, ...] = ()
    labels: NDArray[np.uint8] | None = None
    bad_rows: int = 0
    first_bad: str | None = None

    def __post_init__(self) -> None:
        rows = self.timestamps.shape[0]
        if self.values.shape != (rows, len(self.channels)):
            raise ValueError(f"values {self.values.shape} do not match {rows} rows x channels")
        if (self.labels is None) != (not self.label_names):
            raise ValueError("labels and label_names go together")
        if self.labels is not None and self.labels.shape != (rows, len(self.label_names)):
            raise ValueError(f"labels {self.labels.shape} do not match {rows} rows x names")

    @property
    def rows(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def start(self) -> float:
        return float(self.timestamps[0])

    @property
    def end(self) -> float:
        return float(self.timestamps[-1])
