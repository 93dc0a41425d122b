"""Helpers for the replay and record tests: the shared SKAB data, small CSV files, an oracle."""

from __future__ import annotations

import csv
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

SKAB_ENV = "FEDGE_SKAB_DIR"
SKAB_MISSING = (
    "the SKAB data set is not where the tests look for it: {tried}. It is GPL-3.0 and never "
    "copied into this repository; put it at ../shared/data/skab next to the repository (with "
    "valve1/0.csv inside), or point {env} at it."
)


def skab_dir() -> Path:
    """The shared SKAB folder: $FEDGE_SKAB_DIR, else shared/data/skab beside the repository.

    Looks beside the repository root and beside each of its ancestors, so a checkout or a
    worktree nested deeper still finds ``../shared/data/skab``. Fails (never skips) when absent.
    """
    repo = Path(__file__).resolve().parents[2]
    env = os.environ.get(SKAB_ENV)
    candidates = [Path(env)] if env else []
    candidates += [base / "shared" / "data" / "skab" for base in repo.parents]
    for candidate in candidates:
        if (candidate / "valve1" / "0.csv").is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates[:3])
    pytest.fail(SKAB_MISSING.format(tried=tried, env=SKAB_ENV), pytrace=False)


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (folders created), exactly as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")
    return path


def skab_oracle(
    path: Path,
) -> tuple[NDArray[np.float64], NDArray[np.float32], NDArray[np.uint8]]:
    """A SKAB file read independently of device_sim: UTC times, float32 values, labels."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    body = rows[1:]
    times = np.array(
        [datetime.strptime(r[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp() for r in body]
    )
    values = np.array([[np.float32(float(x)) for x in r[1:9]] for r in body], dtype=np.float32)
    labels = np.array([[int(float(x)) for x in r[9:11]] for r in body], dtype=np.uint8)
    return times, values, labels


def tricky_float32(rows: int, cols: int, seed: int = 0) -> NDArray[np.float32]:
    """Finite float32 values from random bit patterns, plus the edge cases that trip printers."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, size=rows * cols, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = np.where(np.isfinite(values), values, np.float32(1.5))
    edges = np.array(
        [0.0, -0.0, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38, 0.1, 16777217.0],
        dtype=np.float32,
    )
    values[: edges.size] = edges
    return values.reshape(rows, cols).astype(np.float32)
