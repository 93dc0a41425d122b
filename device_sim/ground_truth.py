"""The ground-truth file: one record per injected anomaly or drift, as CSV or JSON Lines.

The labels topic says, reading by reading, what was injected; this file says it once per event,
which is what an evaluator scoring detections (precision, recall, delay) wants. Times are
seconds since the Unix epoch, ``[start, end)`` half-open: ``start`` is the first affected
reading, ``end`` the time just after the last one. For a drift the window is its transition;
the drifted level holds after ``end``. ``start_index``/``end_index`` are the same window in
readings of that device.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Final

from fedge.errors import ConfigError

CSV_SUFFIXES: Final = frozenset({".csv"})
JSONL_SUFFIXES: Final = frozenset({".jsonl", ".ndjson", ".json"})


@dataclass(frozen=True)
class LabelEvent:
    """One injected behaviour on one device."""

    node: str
    device: str
    kind: str  # an anomaly kind (spike, ...) or "drift"
    code: int  # the anomaly label code; 0 for a drift
    channel: str  # affected channels joined by "+"
    start: float
    end: float
    start_index: int
    end_index: int
    magnitude: float | None = None  # anomalies
    scale: float | None = None  # drifts
    shift: float | None = None  # drifts


FIELDS: Final = tuple(f.name for f in fields(LabelEvent))


def check_path(path: str | Path) -> Path:
    """The labels file path, refused early (before any frame is sent) if it cannot be written."""
    out = Path(path)
    if out.suffix.lower() not in CSV_SUFFIXES | JSONL_SUFFIXES:
        raise ConfigError("--labels-file", f"{out} must end in .csv or .jsonl")
    if not out.parent.is_dir():
        raise ConfigError("--labels-file", f"directory {out.parent} does not exist")
    return out


def write_events(path: str | Path, events: Iterable[LabelEvent]) -> int:
    """Write the events (CSV or JSON Lines by suffix); return how many were written."""
    out = check_path(path)
    rows = [asdict(event) for event in events]
    with out.open("w", newline="", encoding="utf-8") as fh:
        if out.suffix.lower() in CSV_SUFFIXES:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        else:
            fh.writelines(json.dumps(row) + "\n" for row in rows)
    return len(rows)


def read_events(path: str | Path) -> list[LabelEvent]:
    """Read a file written by ``write_events`` back into events."""
    out = Path(path)
    with out.open(encoding="utf-8", newline="") as fh:
        if out.suffix.lower() in CSV_SUFFIXES:
            return [_from_csv(row) for row in csv.DictReader(fh)]
        return [LabelEvent(**json.loads(line)) for line in fh if line.strip()]


def _from_csv(row: dict[str, str]) -> LabelEvent:
    def opt(key: str) -> float | None:
        return float(row[key]) if row[key] else None

    return LabelEvent(
        node=row["node"],
        device=row["device"],
        kind=row["kind"],
        code=int(row["code"]),
        channel=row["channel"],
        start=float(row["start"]),
        end=float(row["end"]),
        start_index=int(row["start_index"]),
        end_index=int(row["end_index"]),
        magnitude=opt("magnitude"),
        scale=opt("scale"),
        shift=opt("shift"),
    )
