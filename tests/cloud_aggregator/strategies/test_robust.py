"""Robust strategies: median, trimmed mean and Krum resist updates far from the honest ones."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from cloud_aggregator.strategies import (
    AggregationError,
    Contribution,
    FedAvg,
    Krum,
    Median,
    MultiKrum,
    Strategy,
    TrimmedMean,
)
from tests.cloud_aggregator.strategies.support import folded

CENTRE = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)


def _honest(count: int, seed: int = 0) -> list[Contribution]:
    """Updates scattered closely around CENTRE."""
    rng = np.random.default_rng(seed)
    return [
        Contribution(
            f"honest-{i}",
            {"w": (CENTRE + rng.normal(0, 0.01, CENTRE.shape)).astype(np.float32)},
            10.0,
            f"h{i}",
        )
        for i in range(count)
    ]


def _byzantine(count: int, weight: float = 10.0) -> list[Contribution]:
    """Updates far from CENTRE, each claiming ``weight`` samples."""
    return [
        Contribution(
            f"byzantine-{i}", {"w": np.full((3, 4), 50.0 + i, np.float32)}, weight, f"b{i}"
        )
        for i in range(count)
    ]


def _error(strategy: Strategy, items: list[Contribution]) -> float:
    result: NDArray[np.float32] = folded(strategy, items).result()["w"]
    return float(np.abs(result - CENTRE).max())


@pytest.mark.parametrize(
    "strategy", [Median(), TrimmedMean(beta=0.3)], ids=["median", "trimmed_mean"]
)
def test_coordinate_wise_rules_ignore_outliers(strategy: Strategy) -> None:
    """Two huge updates among five honest ones barely move median and trimmed mean."""
    items = _honest(5) + _byzantine(2, weight=1000.0)
    assert _error(strategy, items) < 0.05
    assert _error(FedAvg(), items) > 40  # what the plain weighted mean would do


def test_trimmed_mean_with_beta_zero_is_the_mean() -> None:
    """beta = 0 trims nothing: the unweighted mean."""
    items = _honest(4)
    expected = np.mean([c.arrays["w"] for c in items], axis=0)
    np.testing.assert_allclose(folded(TrimmedMean(0.0), items).result()["w"], expected, rtol=1e-6)


def test_trimmed_mean_trims_floor_beta_n_each_side() -> None:
    """n = 5, beta = 0.25 trims one value from each side of every coordinate."""
    values = [1.0, 2.0, 3.0, 4.0, 100.0]
    items = [Contribution(f"n{v}", {"x": np.array([v, -v], np.float32)}, 1.0) for v in values]
    np.testing.assert_allclose(folded(TrimmedMean(0.25), items).result()["x"], [3.0, -3.0])


def test_krum_picks_an_honest_update_and_names_the_rest() -> None:
    """With f = 2 Byzantine among 9, Krum returns one honest update unchanged."""
    honest, byzantine = _honest(7, seed=1), _byzantine(2)
    accumulator = folded(Krum(f=2), byzantine[:1] + honest + byzantine[1:])
    result = accumulator.result()["w"]
    assert any(np.array_equal(result, c.arrays["w"]) for c in honest)
    excluded = {e.node: e.reason for e in accumulator.rejected}
    assert {"byzantine-0", "byzantine-1"} <= set(excluded)
    assert len(excluded) == 8
    assert "not selected by Krum (f=2)" in excluded["byzantine-0"]


def test_multikrum_averages_only_honest_updates() -> None:
    """Multi-Krum with f = 2 and m = 4 averages four honest updates."""
    honest = _honest(7, seed=2)
    accumulator = folded(MultiKrum(f=2, m=4), honest + _byzantine(2))
    assert _error(MultiKrum(f=2, m=4), honest + _byzantine(2)) < 0.05
    excluded = {e.node for e in accumulator.rejected}
    assert {"byzantine-0", "byzantine-1"} <= excluded
    assert len(excluded) == 5


def test_multikrum_default_keeps_n_minus_f() -> None:
    """Without m, Multi-Krum averages the n - f best updates."""
    accumulator = folded(MultiKrum(f=2), _honest(7) + _byzantine(2))
    accumulator.result()
    assert {e.node for e in accumulator.rejected} == {"byzantine-0", "byzantine-1"}


def test_krum_refuses_too_few_updates() -> None:
    """Krum with f = 2 needs 2f + 3 = 7 updates; six raise an AggregationError saying so."""
    accumulator = folded(Krum(f=2), _honest(6))
    with pytest.raises(AggregationError, match="needs at least 7 updates, got 6"):
        accumulator.result()
    assert accumulator.rejected == []


def test_krum_ties_do_not_depend_on_arrival_order() -> None:
    """Identical updates tie; the node name decides, whatever the order."""
    same = np.ones((3, 4), np.float32)
    items = [Contribution(f"n{i}", {"w": same}, 1.0) for i in (3, 1, 2)]
    for order in (items, items[::-1]):
        accumulator = folded(Krum(f=0), order)
        accumulator.result()
        assert sorted(e.node for e in accumulator.rejected) == ["n2", "n3"]
