"""From split CSV rows to validated arrays, one block of rows at a time (for ``csvio``).

A block of up to ``BLOCK_ROWS`` rows becomes one string table; its number columns are converted
in one vectorised step, and only when that fails is a column scanned cell by cell to name the
bad cell. Values are parsed as float64 and rounded to float32; labels must be integers 0-255;
timestamps must never decrease (checked across blocks). Working block by block bounds the
memory a large file needs to a few times its parsed size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from device_sim.argtypes import counted
from device_sim.recording import Recording, RecordingError

if TYPE_CHECKING:
    from device_sim.csvio import Layout

BLOCK_ROWS: Final = 65536


@dataclass
class RowBlock:
    """Data rows with the header's field count, their line numbers, and bad rows by line."""

    rows: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad: dict[int, RecordingError] = field(default_factory=dict)


@dataclass
class _Latest:
    """The latest timestamp kept so far, with its text and line, for time-order messages."""

    time: float = -math.inf
    text: str = ""
    line: int = 0


class RowParser:
    """Validates the blocks of one file in order and assembles its Recording."""

    def __init__(self, path: Path, layout: Layout, skip_bad_rows: bool) -> None:
        self.path = path
        self.layout = layout
        self.skip_bad_rows = skip_bad_rows
        self.time_format = layout.time_format
        self.bad_rows = 0
        self.first_bad: RecordingError | None = None
        self._latest = _Latest()
        self._times: list[NDArray[np.float64]] = []
        self._values: list[NDArray[np.float32]] = []
        self._labels: list[NDArray[np.uint8]] = []

    def add(self, block: RowBlock) -> None:
        """Validate a block; keep its good rows; raise on a bad one unless skipping."""
        parsed = _Block(self, block)
        keep = parsed.ok
        self._check_order(parsed, keep)
        if block.bad:
            self.bad_rows += len(block.bad)
            first = block.bad[min(block.bad)]
            if self.first_bad is None or (first.line or 0) < (self.first_bad.line or 0):
                self.first_bad = first
            if not self.skip_bad_rows:
                self._raise(block)
        self._times.append(parsed.times[keep])
        self._values.append(parsed.values[keep])
        if parsed.labels is not None:
            self._labels.append(parsed.labels[keep])

    def recording(self) -> Recording:
        times = np.concatenate(self._times) if self._times else np.zeros(0)
        if not times.size:
            if self.bad_rows:
                reason = (
                    f"has no valid data rows: all {self.bad_rows} rows are bad ({self.first_bad})"
                )
            else:
                reason = "has a header but no data rows"
            raise RecordingError(self.path, reason)
        layout = self.layout
        return Recording(
            path=self.path,
            kind=layout.kind,
            channels=layout.channels,
            timestamps=times,
            values=np.concatenate(self._values),
            label_names=layout.label_names,
            labels=np.concatenate(self._labels) if layout.label_columns else None,
            bad_rows=self.bad_rows,
            first_bad=None if self.first_bad is None else str(self.first_bad),
        )

    def _raise(self, block: RowBlock) -> None:
        line = min(block.bad)
        error = block.bad[line]
        more = len(block.bad) - 1
        hint = f" (and {counted(more, 'more bad row')} up to line {max(block.bad)})" if more else ""
        raise RecordingError(error.path, error.reason + hint, error.line, error.column, error.value)

    def _check_order(self, parsed: _Block, keep: NDArray[np.bool_]) -> None:
        """Rows earlier than an earlier kept row break time order: bad (then not kept)."""
        rows = np.flatnonzero(keep)
        if not rows.size:
            return
        latest = self._latest
        ext = np.concatenate(([latest.time], parsed.times[rows]))
        running = np.maximum.accumulate(ext)
        # Position in ``ext`` of the row that set the running maximum (0: an earlier block).
        setter = np.maximum.accumulate(np.where(ext == running, np.arange(ext.size), 0))
        col = self.layout.time_column

        def described(position: int) -> tuple[str, int]:
            if position == 0:
                return latest.text, latest.line
            row = int(rows[position - 1])
            return parsed.block.rows[row][col], parsed.block.lines[row]

        for k in np.flatnonzero(ext[1:] < running[:-1]).tolist():
            text, line = described(int(setter[k]))
            row = int(rows[k])
            reason = (
                f"is earlier than a previous row ({text} on line {line}): "
                "timestamps must never decrease"
            )
            parsed.mark(row, col, parsed.block.rows[row][col], reason)
            keep[row] = False
        last = int(setter[-1])
        if last:
            latest.text, latest.line = described(last)
            latest.time = float(ext[last])


class _Block:
    """One block's string table converted to arrays, with its bad cells marked."""

    def __init__(self, parser: RowParser, block: RowBlock) -> None:
        self.parser = parser
        self.block = block
        layout = parser.layout
        count = len(block.rows)
        self.table = np.array(block.rows, dtype=np.str_).reshape(count, len(layout.header))
        self.ok = np.ones(count, dtype=bool)
        with np.errstate(over="ignore"):  # overflow to inf is reported per cell just below
            self.values = self._numbers(layout.channel_columns).astype(np.float32)
        self._require(np.isfinite(self.values), layout.channel_columns, "is out of float32 range")
        self.labels = self._parse_labels()
        self.times = self._parse_times()

    def mark(self, row: int, column: int, text: str, reason: str) -> None:
        """Row ``row`` is bad because of the cell in ``column``; the first reason per row wins."""
        text = str(text)  # numpy hands out np.str_, whose repr is not the plain text
        line = self.block.lines[row]
        self.ok[row] = False
        if line not in self.block.bad:
            name = self.parser.layout.header[column]
            error = RecordingError(self.parser.path, f"{text!r} {reason}", line, name, text)
            self.block.bad[line] = error

    def _require(self, good: NDArray[np.bool_], columns: tuple[int, ...], reason: str) -> None:
        for row, j in zip(*np.nonzero(~good), strict=True):
            self.mark(int(row), columns[j], str(self.table[row, columns[j]]), reason)

    def _numbers(self, columns: tuple[int, ...]) -> NDArray[np.float64]:
        block = self.table[:, list(columns)]
        try:
            out = block.astype(np.float64)
        except ValueError:
            out = np.empty(block.shape, np.float64)
            for j, col in enumerate(columns):
                try:
                    out[:, j] = block[:, j].astype(np.float64)
                except ValueError:
                    texts = block[:, j].tolist()
                    out[:, j] = [self._number(i, col, t) for i, t in enumerate(texts)]
        self._require(np.isfinite(out) | ~self.ok[:, None], columns, "is not a finite number")
        return out

    def _number(self, row: int, column: int, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            self.mark(row, column, text, "is not a number")
            return 0.0

    def _parse_labels(self) -> NDArray[np.uint8] | None:
        columns = self.parser.layout.label_columns
        if not columns:
            return None
        numbers = self._numbers(columns)
        valid = (numbers == np.round(numbers)) & (numbers >= 0) & (numbers <= 255)
        self._require(valid | ~self.ok[:, None], columns, "is not a label: use an integer 0-255")
        return np.where(valid, numbers, 0).astype(np.uint8)

    def _parse_times(self) -> NDArray[np.float64]:
        col = self.parser.layout.time_column
        texts = self.table[:, col]
        if self.parser.time_format == "auto" and texts.size:
            self.parser.time_format = _guess_time_format(texts[:100].tolist())
        fmt = self.parser.time_format
        if fmt in ("epoch", "epoch-ms", "auto"):
            seconds = self._numbers((col,))[:, 0]
            return seconds / 1000.0 if fmt == "epoch-ms" else seconds
        out = np.zeros(len(texts), np.float64)
        what = "an ISO 8601 time" if fmt == "iso" else f"a time in the format {fmt!r}"
        for i, text in enumerate(texts.tolist()):
            try:
                out[i] = _parse_time(text, fmt)
            except (ValueError, OverflowError):
                self.mark(i, col, text, f"is not {what}")
        return out


def _guess_time_format(texts: list[str]) -> str:
    """``epoch`` if the first time that parses at all is a number, else ``iso``."""
    for text in texts:
        try:
            float(text)
        except ValueError:
            pass
        else:
            return "epoch"
        try:
            _parse_time(text, "iso")
        except ValueError:
            continue
        return "iso"
    return "iso"


def _parse_time(text: str, fmt: str) -> float:
    """Seconds since the epoch; times without a zone are UTC."""
    stamp = datetime.fromisoformat(text.strip()) if fmt == "iso" else datetime.strptime(text, fmt)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()
