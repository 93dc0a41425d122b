"""Norm filter: drop updates whose L2 norm exceeds ``max_ratio`` times the median norm.

A scaled-up or diverged update shows first in its norm. The threshold is relative to the
median of all the norms in the aggregate, so it needs every norm before it can decide: the
filter keeps each contribution (a reference to its arrays) with its norm, and at ``result()``
folds the ones within the threshold into the wrapped strategy's accumulator. The decision is
therefore exact and independent of arrival order, and ``rejected`` names each dropped node
with its norm and the threshold. The price is memory: O(updates x model) even around FedAvg,
the same as the robust strategies. (A running median decided on arrival would keep FedAvg's
constant memory, but would accept an early outlier that a later median rejects, so the result
would depend on arrival order.)
"""

from __future__ import annotations

import math
import statistics

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies.base import (
    Accumulator,
    AggregationError,
    Arrays,
    Contribution,
    Exclusion,
    Strategy,
    number,
)
from cloud_aggregator.strategies.held import HeldUpdates


def l2_norm(arrays: Arrays) -> float:
    """The L2 norm of all arrays of an update taken together."""
    return math.sqrt(sum(float(np.dot(a.reshape(-1), a.reshape(-1))) for a in arrays.values()))


class NormFiltered(HeldUpdates):
    """Keeps contributions and norms; folds the in-threshold ones into ``inner`` on demand."""

    def __init__(self, inner: Strategy, max_ratio: float) -> None:
        probe = inner.accumulator()
        super().__init__(f"{probe.signature}+norm_filter(max_ratio={max_ratio:g})")
        self.inner = inner
        self.max_ratio = max_ratio
        self._norms: list[float] = []
        self._folded: Accumulator | None = None

    def fold(self, contribution: Contribution) -> None:
        super().fold(contribution)
        self._norms.append(l2_norm(contribution.arrays))

    def merge(self, other: Accumulator) -> None:
        super().merge(other)
        assert isinstance(other, NormFiltered)  # noqa: S101 - checked by super().merge
        self._norms.extend(other.norms)

    def changed(self) -> None:
        self._folded = None

    @property
    def norms(self) -> list[float]:
        """The L2 norm of each contribution, in arrival order."""
        return list(self._norms)

    @property
    def threshold(self) -> float:
        """``max_ratio`` times the median norm of everything folded."""
        if not self._norms:
            raise AggregationError("no update folded yet: nothing to aggregate")
        return self.max_ratio * statistics.median(self._norms)

    def result(self) -> dict[str, NDArray[np.float32]]:
        return self._kept().result()

    @property
    def rejected(self) -> list[Exclusion]:
        if not self._held:
            return []
        threshold = self.threshold
        median = threshold / self.max_ratio
        dropped = [
            Exclusion(
                c.node,
                c.update_id,
                f"update norm {norm:.4g} exceeds {threshold:.4g} "
                f"({self.max_ratio:g} x the median norm {median:.4g})",
            )
            for c, norm in zip(self._held, self._norms, strict=True)
            if norm > threshold
        ]
        inner = self._folded.rejected if self._folded is not None else []
        return dropped + inner

    def _kept(self) -> Accumulator:
        """The wrapped accumulator holding every contribution within the threshold."""
        if self._folded is None:
            threshold = self.threshold
            folded = self.inner.accumulator()
            for contribution, norm in zip(self._held, self._norms, strict=True):
                if norm <= threshold:
                    folded.fold(contribution)
            self._folded = folded
        return self._folded


class NormFilter(Strategy):
    """Wraps a strategy: outlier-norm updates never reach it; everything else is delegated."""

    holds_updates = True
    memory = "O(updates x model): keeps every update until the median norm is known"

    def __init__(self, inner: Strategy, max_ratio: float = 3.0) -> None:
        if isinstance(inner, NormFilter):
            raise AggregationError("a norm filter around a norm filter: use one max_ratio")
        self.inner = inner
        self.max_ratio = number("strategy.norm_filter", max_ratio, lo=1.0)
        # The wrapped strategy's name: make_strategy(name, **params()) rebuilds the pair.
        self.name = inner.name

    def params(self) -> dict[str, float | int]:
        return self.inner.params() | {"norm_filter": self.max_ratio}

    @property
    def label(self) -> str:
        return f"{self.inner.label}+norm_filter(max_ratio={self.max_ratio:g})"

    def accumulator(self) -> NormFiltered:
        return NormFiltered(self.inner, self.max_ratio)

    def client_config(self) -> dict[str, float]:
        return self.inner.client_config()

    def step(self, global_arrays: Arrays, delta: Arrays) -> dict[str, NDArray[np.float32]]:
        return self.inner.step(global_arrays, delta)

    def state(self) -> dict[str, NDArray[np.float32]]:
        return self.inner.state()

    def load_state(self, state: Arrays) -> None:
        self.inner.load_state(state)
