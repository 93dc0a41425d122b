"""Krum and Multi-Krum (Blanchard et al. 2017): keep the updates closest to their neighbours.

With ``n`` updates of which at most ``f`` are Byzantine, each update's score is the sum of its
squared L2 distances to its ``n - f - 2`` nearest other updates. Krum returns the update with
the lowest score; Multi-Krum averages the ``m`` lowest (default ``n - f``, at most ``n - f``).
The guarantee needs ``n >= 2f + 3``, so fewer updates raise ``AggregationError`` rather than
return a choice that means nothing (with ``f = 0`` any ``n`` works: nearest ``max(1, n - 2)``).
Ties are broken by node and update id, so the choice never depends on arrival order.

Keeps every update and ignores the weights (see ``held``). Distances come from a Gram matrix
built one array at a time in float64, so the extra memory is one stacked array, not a copy of
every update.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies.base import AggregationError, Exclusion, Strategy, integer
from cloud_aggregator.strategies.held import HeldUpdates


class KrumSelection(HeldUpdates):
    """Keeps the updates; the result is the mean of the ``m`` best-scored ones."""

    def __init__(self, f: int, m: int | None) -> None:
        super().__init__(f"krum(f={f}, m={'n-f' if m is None else m})")
        self.f = f
        self.m = m
        self._chosen: list[int] | None = None
        self._scores: NDArray[np.float64] = np.zeros(0)
        self._order: list[int] = []

    @property
    def minimum(self) -> int:
        """Fewest updates Krum can choose among for this ``f``."""
        return 2 * self.f + 3 if self.f > 0 else 1

    def changed(self) -> None:
        self._chosen = None

    def chosen(self) -> list[int]:
        """Indices (in arrival order) of the selected updates, best score first."""
        if self._chosen is None:
            self._chosen = self._select()
        return self._chosen

    def result(self) -> dict[str, NDArray[np.float32]]:
        chosen = self.chosen()
        return self.per_array(lambda stacked: stacked[chosen].mean(axis=0, dtype=np.float64))

    @property
    def rejected(self) -> list[Exclusion]:
        if self.count < self.minimum:
            return []
        chosen = set(self.chosen())
        rank = {i: r for r, i in enumerate(self._order)}
        return [
            Exclusion(
                c.node,
                c.update_id,
                f"not selected by Krum (f={self.f}): score {self._scores[i]:.4g} ranks "
                f"{rank[i] + 1} of {self.count}, {len(chosen)} kept",
            )
            for i, c in enumerate(self._held)
            if i not in chosen
        ]

    def _select(self) -> list[int]:
        n = self.count
        if n == 0:
            raise AggregationError("no update folded yet: nothing to aggregate")
        if n < self.minimum:
            raise AggregationError(
                f"Krum with f={self.f} needs at least {self.minimum} updates, got {n}: "
                "wait for more or lower f"
            )
        distances = self._squared_distances()
        nearest = min(n - 1, max(1, n - self.f - 2))
        scores = np.zeros(n)
        for i in range(n):
            others = np.delete(distances[i], i)
            if others.size:
                scores[i] = np.partition(others, nearest - 1)[:nearest].sum()
        held = self._held
        order = sorted(range(n), key=lambda i: (scores[i], held[i].node, held[i].update_id))
        self._scores, self._order = scores, order
        keep = n - self.f if self.m is None else min(self.m, n - self.f)
        return order[:keep]

    def _squared_distances(self) -> NDArray[np.float64]:
        """Pairwise squared L2 distances over all arrays, from an accumulated Gram matrix."""
        assert self._layout is not None  # noqa: S101 - only called with updates held
        n = self.count
        gram = np.zeros((n, n))
        for name in self._layout.shapes:
            rows = self.stacked(name).astype(np.float64)
            gram += rows @ rows.T
        norms = np.diag(gram)
        return np.maximum(norms[:, None] + norms[None, :] - 2.0 * gram, 0.0)


class Krum(Strategy):
    """The single update closest to its ``n - f - 2`` nearest neighbours."""

    name = "krum"
    holds_updates = True
    memory = "O(updates x model): keeps every update until the result"

    def __init__(self, f: int = 1) -> None:
        self.f = integer(f"strategy.{self.name}.f", f, lo=0)

    def params(self) -> dict[str, float | int]:
        return {"f": self.f}

    def accumulator(self) -> KrumSelection:
        return KrumSelection(self.f, 1)


class MultiKrum(Krum):
    """The unweighted mean of the ``m`` updates Krum scores best (default ``n - f``)."""

    name = "multikrum"

    def __init__(self, f: int = 1, m: int | None = None) -> None:
        super().__init__(f)
        self.m = None if m is None else integer("strategy.multikrum.m", m, lo=1)

    def params(self) -> dict[str, float | int]:
        return {"f": self.f} if self.m is None else {"f": self.f, "m": self.m}

    def accumulator(self) -> KrumSelection:
        return KrumSelection(self.f, self.m)
