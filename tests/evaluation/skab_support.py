"""Small runs in SKAB's layout (``;``, ``datetime`` first, ``anomaly``/``changepoint``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from evaluation.protocol import EvalConfig

CHANNELS = (
    "Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
    "Thermocouple", "Voltage", "Volume Flow RateRMS",
)  # fmt: skip

# Quick settings for tests: the protocol's shape, a fraction of the training.
QUICK = EvalConfig(rounds=2, epochs=2)


def write_run(
    path: Path,
    *,
    rows: int = 700,
    anomaly: tuple[int, int] | None = (520, 620),
    seed: int = 0,
    labels: bool = True,
    start: float = 1_583_750_000.0,
) -> Path:
    """A pump-like run: slow periodic channels plus noise; the anomaly shifts three channels
    by several standard deviations (the valve closing), the rest of the run is normal."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows, dtype=np.float64)
    phase = rng.uniform(0, 2 * np.pi, len(CHANNELS))
    base = np.linspace(1.0, 80.0, len(CHANNELS))
    values = (
        base
        + 0.5 * np.sin(2 * np.pi * t[:, None] / 40.0 + phase)
        + rng.normal(0, 0.05, (rows, len(CHANNELS)))
    )
    truth = np.zeros(rows, dtype=int)
    if anomaly is not None:
        a, b = anomaly
        values[a:b, [2, 3, 7]] += 4.0
        truth[a:b] = 1
    header = ["datetime", *CHANNELS] + (["anomaly", "changepoint"] if labels else [])
    lines = [";".join(header)]
    for i in range(rows):
        stamp = datetime.fromtimestamp(start + i, UTC).strftime("%Y-%m-%d %H:%M:%S")
        cells = [stamp, *(f"{v:.6f}" for v in values[i])]
        if labels:
            cells += [f"{float(truth[i]):.1f}", "0.0"]
        lines.append(";".join(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def write_dataset(root: Path, runs: int = 3) -> Path:
    """``runs`` labelled runs in ``valve1/`` and an unlabelled ``anomaly-free/`` file."""
    for i in range(runs):
        write_run(root / "valve1" / f"{i}.csv", seed=i, start=1_583_750_000.0 + 1000 * i)
    write_run(root / "anomaly-free" / "anomaly-free.csv", anomaly=None, labels=False, seed=99)
    return root
