"""Coordinate-wise median (Yin et al. 2018): each coordinate is the median over the updates.

Robust to a minority of arbitrarily bad updates in every coordinate, at the price of keeping
all updates (O(updates x model) memory) and of ignoring the sample weights (see ``held``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies.base import Strategy
from cloud_aggregator.strategies.held import HeldUpdates


class MedianOfUpdates(HeldUpdates):
    """Keeps the updates; the result is their coordinate-wise median."""

    def result(self) -> dict[str, NDArray[np.float32]]:
        return self.per_array(lambda stacked: np.median(stacked, axis=0))


class Median(Strategy):
    """Coordinate-wise median of the deltas, unweighted."""

    name = "median"
    holds_updates = True
    memory = "O(updates x model): keeps every update until the result"

    def accumulator(self) -> MedianOfUpdates:
        return MedianOfUpdates("median")
