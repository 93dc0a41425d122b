"""FedAvg (McMahan et al. 2017): the sample-weighted mean of the deltas, folded as they arrive.

``WeightedMean`` keeps a running weighted sum, never the updates, so its memory is that of one
model however many nodes report. Each fold is a float32 multiply-add done in cache-sized
chunks; every ``BLOCK`` folds the float32 partial sum moves into a float64 total, so rounding
error grows with the block, not with the number of updates, while the per-update work stays
float32. The server optimizers (FedAvgM, FedAdam, ...) and FedProx fold with it too, so a
site aggregator running FedAvg can merge its partial aggregate into a cloud running FedAdam.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Final

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies.base import (
    F32,
    Accumulator,
    AggregationError,
    Contribution,
    Layout,
    Strategy,
    check_mergeable,
)

# Elements per multiply-add: the float32 scratch (256 KiB) stays in the CPU's L2 cache, and
# a 1M-parameter model takes a few dozen numpy calls per fold, not thousands.
CHUNK: Final = 65_536
# Folds summed in float32 before the partial sum is added to the float64 total.
BLOCK: Final = 16


class WeightedMean(Accumulator):
    """Streaming weighted mean of named float32 arrays; memory O(model), not O(updates)."""

    def __init__(self) -> None:
        # Any two weighted means merge, whatever server step follows them.
        self.signature = "weighted mean"
        self._layout: Layout | None = None
        self._partial: dict[str, NDArray[np.float32]] = {}  # flat float32 sums of this block
        self._total: dict[str, NDArray[np.float64]] = {}  # flat float64 sums of past blocks
        self._in_block = 0
        self._count = 0
        self._weight = 0.0
        self._scratch: NDArray[np.float32] = np.empty(0, F32)

    @property
    def count(self) -> int:
        return self._count

    @property
    def total_weight(self) -> float:
        return self._weight

    @property
    def layout(self) -> Layout | None:
        """Names and shapes of the arrays folded, once one contribution has arrived."""
        return self._layout

    def sums(self) -> Iterator[tuple[str, NDArray[np.float32], NDArray[np.float64]]]:
        """Per array (flat, read-only): this block's float32 sum and earlier blocks' float64 sum."""
        for name, partial in self._partial.items():
            yield name, partial, self._total[name]

    def fold(self, contribution: Contribution) -> None:
        self._fit(contribution)
        weight = contribution.weight
        scratch = self._scratch
        for name, array in contribution.arrays.items():
            values = array.reshape(-1)
            partial = self._partial[name]
            for start in range(0, values.size, CHUNK):
                stop = start + CHUNK
                product = scratch[: min(CHUNK, values.size - start)]
                np.multiply(values[start:stop], weight, out=product)
                np.add(partial[start:stop], product, out=partial[start:stop])
        self._count += 1
        self._weight += weight
        self._in_block += 1
        if self._in_block == BLOCK:
            self._end_block()

    def merge(self, other: Accumulator) -> None:
        check_mergeable(self, other)
        assert isinstance(other, WeightedMean)  # noqa: S101 - narrowed by check_mergeable
        if other.layout is None:
            return
        if self._layout is None:
            self._allocate(other.layout)
        elif other.layout != self._layout:
            raise AggregationError("cannot merge aggregates of models with different arrays")
        self._end_block()
        for name, partial, earlier in other.sums():
            total = self._total[name]
            np.add(total, earlier, out=total)
            np.add(total, partial, out=total)
        self._count += other.count
        self._weight += other.total_weight

    def result(self) -> dict[str, NDArray[np.float32]]:
        if self._layout is None:
            raise AggregationError("no update folded yet: nothing to aggregate")
        out: dict[str, NDArray[np.float32]] = {}
        for name, shape in self._layout.shapes.items():
            mean = np.add(self._total[name], self._partial[name])
            np.divide(mean, self._weight, out=mean)
            out[name] = mean.astype(F32).reshape(shape)
        return out

    def _fit(self, contribution: Contribution) -> None:
        if self._layout is None:
            self._allocate(Layout.of(contribution.arrays))
        else:
            self._layout.check(contribution)

    def _allocate(self, layout: Layout) -> None:
        self._layout = layout
        sizes = {name: math.prod(shape) for name, shape in layout.shapes.items()}
        self._partial = {name: np.zeros(size, F32) for name, size in sizes.items()}
        self._total = {name: np.zeros(size, np.float64) for name, size in sizes.items()}
        self._scratch = np.empty(min(CHUNK, max(sizes.values())), F32)

    def _end_block(self) -> None:
        """Move the float32 partial sums into the float64 totals and start a new block."""
        if self._in_block == 0:
            return
        for name, partial in self._partial.items():
            total = self._total[name]
            np.add(total, partial, out=total)
            partial.fill(0.0)
        self._in_block = 0


class FedAvg(Strategy):
    """Weighted by samples; the server adds the mean delta to the global model."""

    name = "fedavg"
    memory = "O(model): a float32 partial sum and a float64 total, 12 bytes per parameter"

    def accumulator(self) -> WeightedMean:
        return WeightedMean()
