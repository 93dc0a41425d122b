"""The accumulator of the robust strategies: it keeps every contribution until ``result()``.

A median, a trimmed mean or Krum cannot be computed from a running sum: each needs all the
updates at once, so memory is O(updates x model). The arrays kept are references, not copies
(the wire decoder's read-only views), and ``merge`` concatenates. Robust rules ignore the
weights on purpose: sample counts are reported by the nodes themselves, and the attacker these
rules defend against would simply claim a large one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies.base import (
    F32,
    Accumulator,
    AggregationError,
    Contribution,
    Layout,
    check_mergeable,
)


class HeldUpdates(Accumulator):
    """Keeps the contributions; subclasses combine them in ``result()`` (see ``per_array``)."""

    def __init__(self, signature: str) -> None:
        self.signature = signature
        self._layout: Layout | None = None
        self._held: list[Contribution] = []
        self._weight = 0.0

    @property
    def count(self) -> int:
        return len(self._held)

    @property
    def total_weight(self) -> float:
        return self._weight

    @property
    def layout(self) -> Layout | None:
        """Names and shapes of the arrays folded, once one contribution has arrived."""
        return self._layout

    @property
    def held(self) -> list[Contribution]:
        """The contributions folded so far, in arrival order."""
        return list(self._held)

    def fold(self, contribution: Contribution) -> None:
        if self._layout is None:
            self._layout = Layout.of(contribution.arrays)
        else:
            self._layout.check(contribution)
        self._held.append(contribution)
        self._weight += contribution.weight
        self.changed()

    def merge(self, other: Accumulator) -> None:
        check_mergeable(self, other)
        assert isinstance(other, HeldUpdates)  # noqa: S101 - narrowed by check_mergeable
        if other.layout is None:
            return
        if self._layout is None:
            self._layout = other.layout
        elif other.layout != self._layout:
            raise AggregationError("cannot merge aggregates of models with different arrays")
        self._held.extend(other.held)
        self._weight += other.total_weight
        self.changed()

    def per_array(
        self, combine: Callable[[NDArray[np.float32]], NDArray[np.floating]]
    ) -> dict[str, NDArray[np.float32]]:
        """Apply ``combine`` to each array's stacked values (one row per contribution)."""
        if self._layout is None:
            raise AggregationError("no update folded yet: nothing to aggregate")
        return {
            name: combine(self.stacked(name)).astype(F32).reshape(shape)
            for name, shape in self._layout.shapes.items()
        }

    def stacked(self, name: str) -> NDArray[np.float32]:
        """One array of every held contribution, flattened and stacked: (updates, size)."""
        return np.stack([c.arrays[name].reshape(-1) for c in self._held])

    def changed(self) -> None:
        """Called after every fold and merge, for subclasses that cache a selection."""
