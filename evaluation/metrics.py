"""Point-wise detection metrics, and anomaly episodes turned back into flagged readings.

SKAB's protocol scores every test reading: F1 over the anomalous class, the false-alarm rate
FAR = FP / (FP + TN) and the missed-alarm rate MAR = FN / (FN + TP), with the confusion counts
pooled over all runs (not averaged per run).

A node reports anomalies as episodes (``edge_node.detector``): an ``open`` event with the time
of the first window above the threshold, then a ``closed`` event with the time of the last one.
A reading is flagged when its time falls inside an episode; an episode still open when the
data ends flags every reading from its start on. The in-process and the live evaluation both
go through ``flag_readings``, so they differ only in how the episodes reached them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Episode:
    start: float
    end: float | None  # None: still open when the data ended


@dataclass(frozen=True)
class Confusion:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    @classmethod
    def of(cls, truth: NDArray[np.bool_], flagged: NDArray[np.bool_]) -> Confusion:
        if truth.shape != flagged.shape:
            raise ValueError(f"truth {truth.shape} and flags {flagged.shape} differ in shape")
        return cls(
            tp=int((truth & flagged).sum()),
            fp=int((~truth & flagged).sum()),
            tn=int((~truth & ~flagged).sum()),
            fn=int((truth & ~flagged).sum()),
        )

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.tn + other.tn, self.fn + other.fn
        )

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 0.0

    @property
    def far(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def mar(self) -> float:
        return self.fn / (self.fn + self.tp) if self.fn + self.tp else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "f1": round(self.f1, 4),
            "far": round(self.far, 4),
            "mar": round(self.mar, 4),
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
        }


def pooled(confusions: Iterable[Confusion]) -> Confusion:
    total = Confusion()
    for confusion in confusions:
        total = total + confusion
    return total


def flag_readings(times: NDArray[np.float64], episodes: Iterable[Episode]) -> NDArray[np.bool_]:
    """Which readings (by timestamp) fall inside an episode."""
    flagged = np.zeros(times.shape[0], dtype=bool)
    for episode in episodes:
        inside = times >= episode.start
        if episode.end is not None:
            inside &= times <= episode.end
        flagged |= inside
    return flagged
