"""Coordinate-wise trimmed mean (Yin et al. 2018).

For each coordinate, drop the ``floor(beta * n)`` largest and the as many smallest values of
the ``n`` updates and average the rest. ``beta = 0`` is the plain mean; ``beta`` must stay
below 0.5 so something remains. Keeps all updates and ignores the weights (see ``held``).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies.base import Strategy, number
from cloud_aggregator.strategies.held import HeldUpdates


class TrimmedMeanOfUpdates(HeldUpdates):
    """Keeps the updates; the result trims ``beta`` of them from each side per coordinate."""

    def __init__(self, beta: float) -> None:
        super().__init__(f"trimmed_mean(beta={beta:g})")
        self.beta = beta

    def result(self) -> dict[str, NDArray[np.float32]]:
        return self.per_array(self._trimmed_mean)

    def _trimmed_mean(self, stacked: NDArray[np.float32]) -> NDArray[np.floating]:
        n = stacked.shape[0]
        cut = math.floor(self.beta * n)
        ordered = np.sort(stacked, axis=0)
        kept: NDArray[np.float64] = ordered[cut : n - cut].mean(axis=0, dtype=np.float64)
        return kept


class TrimmedMean(Strategy):
    """Coordinate-wise mean after trimming a fraction ``beta`` from each side, unweighted."""

    name = "trimmed_mean"
    holds_updates = True
    memory = "O(updates x model): keeps every update until the result"

    def __init__(self, beta: float = 0.1) -> None:
        self.beta = number("strategy.trimmed_mean.beta", beta, lo=0.0, hi=0.5, hi_open=True)

    def params(self) -> dict[str, float | int]:
        return {"beta": self.beta}

    def accumulator(self) -> TrimmedMeanOfUpdates:
        return TrimmedMeanOfUpdates(self.beta)
