"""What every aggregation strategy shares: contributions, the fold protocol and the server step.

A strategy is a fold. Its ``Accumulator`` takes one ``Contribution`` at a time as updates
arrive (``fold``), joins another partial aggregate of the same strategy (``merge``: a site
aggregator's accumulator folds into the cloud's) and reports the aggregated delta so far
(``result``). ``Strategy.step`` then turns that delta into the next global model; server
optimizers keep state there (momentum, moments) and expose it for the registry to persist.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, cast

import numpy as np
from numpy.typing import NDArray

from fedge.errors import ConfigError, FedgeError
from fedge.wire import ModelUpdate

# Named float32 arrays keyed by state-dict name: a delta, a global model or optimizer state.
Arrays = Mapping[str, NDArray[np.float32]]
F32: Final = np.dtype(np.float32)
# The one compression descriptor an update may carry: float16 arrays, widened on arrival.
FLOAT16_SCHEME: Final = {"scheme": "float16"}


class AggregationError(FedgeError):
    """An accumulator or strategy was used in a way its maths does not allow."""


class ContributionError(AggregationError):
    """A contribution does not fit the aggregate (names, shapes, dtype or weight): dropped.

    ``node`` and ``update_id`` say whose it was and ``reason`` what is wrong with it, so the
    caller can count and log the drop without parsing the message.
    """

    def __init__(self, node: str, reason: str, update_id: str = "") -> None:
        super().__init__(f"update from {node} {reason}: dropped")
        self.node = node
        self.update_id = update_id
        self.reason = reason


@dataclass(frozen=True, eq=False)
class Contribution:
    """One node's delta from the global model and how much it counts.

    ``weight`` is the number of training samples, or that times a staleness factor for
    asynchronous updates. Arrays are float32 and never written to by any accumulator, so the
    read-only views the wire decoder returns can be folded without a copy. Finiteness is not
    checked again here: ``fedge.wire.decode`` rejects NaN and infinity before anything else.
    """

    node: str
    arrays: Arrays
    weight: float
    update_id: str = ""

    def __post_init__(self) -> None:
        if not self.arrays:
            raise ContributionError(self.node, "carries no arrays", self.update_id)
        if isinstance(self.weight, bool) or not (
            isinstance(self.weight, (int, float)) and math.isfinite(self.weight) and self.weight > 0
        ):
            raise ContributionError(
                self.node, f"has weight {self.weight!r}, expected a finite number > 0"
            )
        for name, value in self.arrays.items():
            array: object = value  # built in code, so check what the annotation promises
            if not isinstance(array, np.ndarray):
                reason = f"has a {type(array).__name__} for {name}, expected a float32 array"
            elif array.dtype != F32:
                reason = f"has dtype {array.dtype} for {name}, expected float32"
            else:
                continue
            raise ContributionError(self.node, reason, self.update_id)

    @classmethod
    def from_update(cls, update: ModelUpdate, weight: float | None = None) -> Contribution:
        """The contribution of an update, weighted by its samples unless told otherwise.

        float32 arrays are used as they are (no copy); an update sent with the float16
        compression (``{"scheme": "float16"}``, see ``cloud_aggregator.validation``) is
        widened to float32 here. Any other compression is refused.
        """
        compression = None if update.compression is None else dict(update.compression)
        if compression is None:
            arrays = cast(Arrays, update.arrays)  # dtypes are checked in __post_init__
        elif compression == FLOAT16_SCHEME:
            arrays = {name: np.asarray(a, dtype=F32) for name, a in update.arrays.items()}
        else:
            raise ContributionError(
                update.node,
                f"uses compression {compression!r}, which is not supported",
                update.update_id,
            )
        return cls(
            node=update.node,
            arrays=arrays,
            weight=float(update.num_samples) if weight is None else weight,
            update_id=update.update_id,
        )


@dataclass(frozen=True)
class Exclusion:
    """A contribution that was folded but left out of the result, and why."""

    node: str
    update_id: str
    reason: str


@dataclass(frozen=True)
class Layout:
    """The names and shapes every contribution to one aggregate must have."""

    shapes: Mapping[str, tuple[int, ...]]

    @classmethod
    def of(cls, arrays: Arrays) -> Layout:
        return cls({name: tuple(array.shape) for name, array in arrays.items()})

    def check(self, contribution: Contribution) -> None:
        """Raise ``ContributionError`` naming the first array that does not fit."""
        arrays = contribution.arrays
        for name, shape in self.shapes.items():
            array = arrays.get(name)
            if array is None:
                reason = f"lacks {name}"
            elif array.shape != shape:
                reason = f"has shape {array.shape} for {name}, expected {shape}"
            else:
                continue
            raise ContributionError(contribution.node, reason, contribution.update_id)
        if len(arrays) != len(self.shapes):
            extra = sorted(set(arrays) - set(self.shapes))
            raise ContributionError(
                contribution.node, f"carries unknown arrays {extra}", contribution.update_id
            )


class Accumulator(ABC):
    """A partial aggregate: fold contributions in any order, merge partials, read the result.

    ``count`` and ``total_weight`` cover every contribution folded, including any that a
    filter or a robust rule later leaves out; ``rejected`` names those, with the reason.
    ``signature`` names the aggregation rule and its parameters: only accumulators with equal
    signatures merge (server-step parameters such as a learning rate are not part of it).
    """

    signature: str

    @abstractmethod
    def fold(self, contribution: Contribution) -> None:
        """Add one contribution; raise ``ContributionError`` if it does not fit."""

    @abstractmethod
    def merge(self, other: Accumulator) -> None:
        """Add everything ``other`` folded (same strategy and parameters); ``other`` is kept."""

    @abstractmethod
    def result(self) -> dict[str, NDArray[np.float32]]:
        """The aggregated delta as new float32 arrays; folding may continue afterwards."""

    @property
    @abstractmethod
    def count(self) -> int:
        """Contributions folded so far."""

    @property
    @abstractmethod
    def total_weight(self) -> float:
        """Sum of the weights folded so far."""

    @property
    def rejected(self) -> list[Exclusion]:
        """Contributions folded but left out of ``result()``, with the reason."""
        return []


class Strategy(ABC):
    """How updates become the next global model: an accumulator plus a server step.

    ``make_strategy(s.name, **s.params())`` rebuilds an equivalent strategy, which is what the
    registry stores; ``state()`` / ``load_state()`` carry a server optimizer's state across a
    restart. ``holds_updates`` and ``memory`` say what an accumulator keeps.
    """

    name: str
    holds_updates = False
    memory = "O(model)"

    @abstractmethod
    def accumulator(self) -> Accumulator:
        """A new, empty accumulator for one round or one buffer."""

    def params(self) -> dict[str, float | int]:
        """The parameters that rebuild this strategy through ``make_strategy``."""
        return {}

    @property
    def label(self) -> str:
        """Name and parameters, for logs and status pages."""
        params = ", ".join(f"{k}={v:g}" for k, v in self.params().items())
        return f"{self.name}({params})" if params else self.name

    def client_config(self) -> dict[str, float]:
        """Hyper-parameters nodes need in their train commands (FedProx's ``mu``)."""
        return {}

    def step(self, global_arrays: Arrays, delta: Arrays) -> dict[str, NDArray[np.float32]]:
        """The next global model from the current one and the aggregated delta (FedAvg: add)."""
        check_same_layout(global_arrays, delta)
        return {
            name: np.add(value, delta[name], dtype=F32) for name, value in global_arrays.items()
        }

    def state(self) -> dict[str, NDArray[np.float32]]:
        """Server-side state to persist with each version (none for stateless strategies)."""
        return {}

    def load_state(self, state: Arrays) -> None:
        """Restore what ``state()`` returned, after a restart."""
        if state:
            raise AggregationError(f"{self.name} keeps no server state, got {sorted(state)}")


def check_same_layout(global_arrays: Arrays, delta: Arrays) -> None:
    """Raise ``AggregationError`` unless a delta has exactly the global model's arrays."""
    if global_arrays.keys() != delta.keys():
        missing = sorted(set(global_arrays) ^ set(delta))
        raise AggregationError(f"delta and global model differ in arrays {missing}")
    for name, value in global_arrays.items():
        if value.shape != delta[name].shape:
            raise AggregationError(
                f"delta has shape {delta[name].shape} for {name}, global model {value.shape}"
            )


def check_mergeable(mine: Accumulator, other: Accumulator) -> None:
    """Raise ``AggregationError`` unless ``other`` is the same kind of accumulator, same setup."""
    if type(other) is not type(mine) or other.signature != mine.signature:
        raise AggregationError(
            f"cannot merge a {other.signature} aggregate into a {mine.signature} one"
        )


def number(
    key: str,
    value: object,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """A finite real parameter within bounds, or ``ConfigError`` naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(key, f"expected a finite number, got {value!r}")
    low_bad = lo is not None and (value <= lo if lo_open else value < lo)
    high_bad = hi is not None and (value >= hi if hi_open else value > hi)
    if low_bad or high_bad:
        left = "(-inf" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
        right = "inf)" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
        raise ConfigError(key, f"{value!r} is outside {left}, {right}")
    return float(value)


def integer(key: str, value: object, *, lo: int) -> int:
    """An integer parameter >= ``lo``, or ``ConfigError`` naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if value < lo:
        raise ConfigError(key, f"{value} is below the minimum {lo}")
    return value


def load_moments(
    strategy: str, state: Arrays, kinds: Sequence[str]
) -> list[dict[str, NDArray[np.float32]]]:
    """Split ``{kind/name: array}`` into one map per kind, each covering the same arrays."""
    split: dict[str, dict[str, NDArray[np.float32]]] = {kind: {} for kind in kinds}
    for key, value in state.items():
        kind, sep, name = key.partition("/")
        if not sep or kind not in split or not name:
            raise AggregationError(f"{strategy} state has unknown entry {key!r}")
        split[kind][name] = np.array(value, dtype=F32)
    names = [split[kind].keys() for kind in kinds]
    if any(n != names[0] for n in names):
        raise AggregationError(f"{strategy} state covers different arrays for {list(kinds)}")
    return [split[kind] for kind in kinds]
