"""Contract checks every strategy passes, the way river's checks run over every estimator."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from cloud_aggregator.strategies import (
    STRATEGIES,
    AggregationError,
    Contribution,
    ContributionError,
    Strategy,
    make_strategy,
)
from tests.cloud_aggregator.strategies.support import (
    EVERY_STRATEGY,
    assert_close,
    contributions,
    folded,
)

strategies = pytest.mark.parametrize(
    "make", list(EVERY_STRATEGY.values()), ids=list(EVERY_STRATEGY)
)


def test_every_catalogued_strategy_is_checked() -> None:
    """The contract runs over every name the catalogue knows."""
    assert set(STRATEGIES) <= set(EVERY_STRATEGY)


@strategies
def test_permutation_invariance(make: Callable[[], Strategy]) -> None:
    """The result does not depend on the order updates arrive in."""
    items = contributions(7)
    forward = folded(make(), items).result()
    for seed in range(3):
        shuffled = [items[i] for i in np.random.default_rng(seed).permutation(len(items))]
        assert_close(folded(make(), shuffled).result(), forward)


@strategies
def test_single_update_returns_that_update(make: Callable[[], Strategy]) -> None:
    """Aggregating one update gives back that update."""
    (only,) = contributions(1)
    assert_close(folded(make(), [only]).result(), dict(only.arrays))


@strategies
def test_merge_equals_folding_both(make: Callable[[], Strategy]) -> None:
    """merge(a, b) gives what folding all of a's and b's updates into one accumulator gives."""
    items = contributions(9, seed=1)
    a, b = folded(make(), items[:4]), folded(make(), items[4:])
    a.merge(b)
    assert_close(a.result(), folded(make(), items).result())
    assert a.count == 9
    assert a.total_weight == pytest.approx(sum(c.weight for c in items))
    assert b.count == 5  # the merged-in accumulator is left as it was


@strategies
def test_merge_with_empty_on_either_side(make: Callable[[], Strategy]) -> None:
    """Merging an empty accumulator changes nothing; merging into one adopts the other."""
    items = contributions(5, seed=2)
    full = folded(make(), items)
    full.merge(make().accumulator())
    empty = make().accumulator()
    empty.merge(folded(make(), items))
    assert_close(full.result(), folded(make(), items).result())
    assert_close(empty.result(), full.result())


@strategies
def test_weights_normalise(make: Callable[[], Strategy]) -> None:
    """Scaling every weight by the same factor leaves the result unchanged."""
    items = contributions(6, seed=3)
    scaled = [dataclasses.replace(c, weight=c.weight * 1000.0) for c in items]
    assert_close(folded(make(), scaled).result(), folded(make(), items).result())


@strategies
def test_result_is_repeatable_and_folding_continues(make: Callable[[], Strategy]) -> None:
    """result() can be read mid-stream; it neither ends the fold nor changes on a second read."""
    items = contributions(6, seed=4)
    accumulator = folded(make(), items[:3])
    first = accumulator.result()
    assert_close(accumulator.result(), first)
    for item in items[3:]:
        accumulator.fold(item)
    assert_close(accumulator.result(), folded(make(), items).result())


@strategies
def test_result_owns_its_arrays(make: Callable[[], Strategy]) -> None:
    """Results are new writable float32 arrays: changing one touches no contribution."""
    (only,) = contributions(1, seed=5)
    before = {name: a.copy() for name, a in only.arrays.items()}
    result = folded(make(), [only]).result()
    for name in result:
        assert result[name].dtype == np.float32
        result[name] += 1.0
    assert_close(dict(only.arrays), before, rtol=0, atol=0)


@strategies
def test_misfit_update_is_refused_and_named(make: Callable[[], Strategy]) -> None:
    """An update with another shape raises ContributionError naming node and array."""
    good, other = contributions(2, seed=6)
    wrong = {**other.arrays, "enc.0.bias": np.zeros(5, np.float32)}
    accumulator = folded(make(), [good])
    with pytest.raises(ContributionError, match=r"node-01 has shape \(5,\) for enc.0.bias"):
        accumulator.fold(Contribution("node-01", wrong, 1.0))
    assert accumulator.count == 1


@strategies
def test_empty_result_raises(make: Callable[[], Strategy]) -> None:
    """Asking for a result before any update is an AggregationError, not an empty model."""
    with pytest.raises(AggregationError, match="no update folded"):
        make().accumulator().result()


@strategies
def test_merge_refuses_another_rule(make: Callable[[], Strategy]) -> None:
    """Accumulators of different aggregation rules do not merge."""
    mine = make()
    other = (
        make_strategy("median")
        if mine.accumulator().signature != "median"
        else make_strategy("fedavg")
    )
    with pytest.raises(AggregationError, match="cannot merge"):
        mine.accumulator().merge(other.accumulator())


@strategies
def test_catalogue_rebuilds_the_strategy(make: Callable[[], Strategy]) -> None:
    """make_strategy(name, **params()) gives an equivalent strategy, as the registry needs."""
    strategy = make()
    rebuilt = make_strategy(strategy.name, **strategy.params())
    assert (rebuilt.label, rebuilt.params()) == (strategy.label, strategy.params())
    assert rebuilt.accumulator().signature == strategy.accumulator().signature
