"""FedBuff (Nguyen et al. 2022): asynchronous updates fold into a buffer with a staleness weight.

An update trained from global version ``b`` that arrives while the current version is ``v``
is ``tau = v - b`` versions stale. It folds into the buffer's accumulator with weight
``n * s(tau)`` (``n`` its samples); every ``k`` updates, or once the oldest one has waited
``max_wait_s``, the buffer becomes the delta for a new global version:

    delta = sum_i n_i * s(tau_i) * delta_i / sum_i n_i

With ``n_i = 1`` this is the paper's ``(1/K) * sum_i s(tau_i) * delta_i``: staleness both
shifts the mix towards fresh updates and shrinks the step when everything in it is stale.
(For a robust strategy, which ignores weights, only the second effect remains.) Updates more
than ``max_staleness`` versions behind, or based on a version the buffer has not seen, are
rejected and named. ``s`` is configurable (``Staleness``):

    constant:   s(tau) = 1
    polynomial: s(tau) = (1 + tau) ** -a          (default a = 0.5: 1 / sqrt(1 + tau))
    hinge:      s(tau) = 1 if tau <= b else 1 / (a * (tau - b) + 1)     (Xie et al. 2019)

Weights are fixed when an update folds; the caller applies the flushed delta with the
strategy's ``step`` and then calls ``advance_to`` with the version it published.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies.base import (
    AggregationError,
    Contribution,
    Exclusion,
    Strategy,
    integer,
    number,
)
from fedge.errors import ConfigError

StalenessKind = Literal["constant", "polynomial", "hinge"]


@dataclass(frozen=True)
class Staleness:
    """``s(tau)``: how much an update ``tau`` versions behind still counts (see module doc)."""

    kind: StalenessKind = "polynomial"
    a: float = 0.5
    b: int = 4

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "polynomial", "hinge"):
            raise ConfigError("staleness.kind", f"{self.kind!r}: use constant, polynomial or hinge")
        number("staleness.a", self.a, lo=0.0, lo_open=self.kind == "hinge")
        integer("staleness.b", self.b, lo=0)

    @classmethod
    def constant(cls) -> Staleness:
        return cls("constant")

    @classmethod
    def polynomial(cls, a: float = 0.5) -> Staleness:
        return cls("polynomial", a=a)

    @classmethod
    def hinge(cls, a: float = 10.0, b: int = 4) -> Staleness:
        return cls("hinge", a=a, b=b)

    def __call__(self, tau: int) -> float:
        if self.kind == "constant":
            return 1.0
        if self.kind == "polynomial":
            return float((1.0 + tau) ** -self.a)
        return 1.0 if tau <= self.b else 1.0 / (self.a * (tau - self.b) + 1.0)


@dataclass(frozen=True)
class BufferFlush:
    """What one flush produced: the delta for version ``base_version + 1`` and its sources."""

    delta: dict[str, NDArray[np.float32]]
    base_version: int
    update_ids: tuple[str, ...]
    staleness: tuple[int, ...]
    rejected: tuple[Exclusion, ...]


class AsyncBuffer:
    """Folds out-of-round updates with staleness weights; ``ready()`` says when to flush."""

    def __init__(
        self,
        strategy: Strategy,
        *,
        k: int = 10,
        max_wait_s: float = 60.0,
        staleness: Staleness | None = None,
        max_staleness: int = 10,
        version: int = 0,
    ) -> None:
        self.strategy = strategy
        self.k = integer("fedbuff.k", k, lo=1)
        self.max_wait_s = number("fedbuff.max_wait_s", max_wait_s, lo=0.0, lo_open=True)
        self.staleness = staleness or Staleness()
        self.max_staleness = integer("fedbuff.max_staleness", max_staleness, lo=0)
        self._version = integer("fedbuff.version", version, lo=0)
        self._accumulator = strategy.accumulator()
        self._raw_weight = 0.0
        self._update_ids: list[str] = []
        self._taus: list[int] = []
        self._rejected: list[Exclusion] = []
        self._first_fold_at: float | None = None

    @property
    def version(self) -> int:
        """The current global version, against which staleness is measured."""
        return self._version

    @property
    def count(self) -> int:
        """Updates folded since the last flush."""
        return len(self._update_ids)

    @property
    def rejected(self) -> list[Exclusion]:
        """Updates refused since the last flush (too stale, unknown base, filtered out)."""
        return self._rejected + self._accumulator.rejected

    def advance_to(self, version: int) -> None:
        """Record a newly published global version (by this buffer or by a round)."""
        if version < self._version:
            raise AggregationError(f"version {version} is older than the current {self._version}")
        self._version = version

    def fold(self, contribution: Contribution, base_version: int, now: float) -> Exclusion | None:
        """Fold an update trained from ``base_version``; return its rejection, if refused.

        ``now`` is a monotonic clock reading. A contribution that does not fit the model
        raises ``ContributionError`` as with any accumulator.
        """
        tau = self._version - base_version
        reason = None
        if tau < 0:
            reason = f"base version {base_version} is newer than the current {self._version}"
        elif tau > self.max_staleness:
            reason = (
                f"base version {base_version} is {tau} versions behind {self._version} "
                f"(limit {self.max_staleness})"
            )
        if reason is not None:
            rejection = Exclusion(contribution.node, contribution.update_id, reason)
            self._rejected.append(rejection)
            return rejection
        weighted = dataclasses.replace(
            contribution, weight=contribution.weight * self.staleness(tau)
        )
        self._accumulator.fold(weighted)
        self._raw_weight += contribution.weight
        self._update_ids.append(contribution.update_id)
        self._taus.append(tau)
        if self._first_fold_at is None:
            self._first_fold_at = now
        return None

    def ready(self, now: float) -> bool:
        """True once ``k`` updates are in, or the oldest has waited ``max_wait_s``."""
        if self._first_fold_at is None:
            return False
        return self.count >= self.k or now - self._first_fold_at >= self.max_wait_s

    def flush(self) -> BufferFlush:
        """The buffer's delta (see the module doc); the buffer starts empty again."""
        if not self._update_ids:
            raise AggregationError("the async buffer is empty: nothing to flush")
        delta = self._accumulator.result()
        discount = self._accumulator.total_weight / self._raw_weight
        for array in delta.values():
            np.multiply(array, discount, out=array)
        flushed = BufferFlush(
            delta=delta,
            base_version=self._version,
            update_ids=tuple(self._update_ids),
            staleness=tuple(self._taus),
            rejected=tuple(self.rejected),
        )
        self._reset()
        return flushed

    def _reset(self) -> None:
        self._accumulator = self.strategy.accumulator()
        self._raw_weight = 0.0
        self._update_ids = []
        self._taus = []
        self._rejected = []
        self._first_fold_at = None
