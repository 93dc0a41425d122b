"""The norm filter drops updates far above the median norm and says whom and why."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_aggregator.strategies import (
    AggregationError,
    FedAdam,
    FedAvg,
    Krum,
    NormFilter,
    make_strategy,
)
from cloud_aggregator.strategies.norm_filter import l2_norm
from fedge.errors import ConfigError
from tests.cloud_aggregator.strategies.support import assert_close, contributions, folded


def test_drops_the_outlier_and_names_it() -> None:
    """An update 10x larger than the rest is left out; rejected gives node, norm, threshold."""
    items = contributions(6, seed=1, outlier=10.0)
    accumulator = folded(NormFilter(FedAvg(), max_ratio=3.0), items)
    assert_close(accumulator.result(), folded(FedAvg(), items[:-1]).result())
    (dropped,) = accumulator.rejected
    assert (dropped.node, dropped.update_id) == ("node-05", "u1-5")
    median = float(np.median([l2_norm(c.arrays) for c in items]))
    norm = l2_norm(items[-1].arrays)
    assert dropped.reason == (
        f"update norm {norm:.4g} exceeds {3 * median:.4g} (3 x the median norm {median:.4g})"
    )


def test_keeps_everything_without_outliers() -> None:
    """Similar norms pass untouched: the result is the wrapped strategy's."""
    items = contributions(6, seed=2)
    accumulator = folded(NormFilter(FedAvg(), 3.0), items)
    assert accumulator.rejected == []
    assert_close(accumulator.result(), folded(FedAvg(), items).result())


def test_passes_on_the_wrapped_strategys_exclusions() -> None:
    """Around Krum, both the norm outlier and Krum's unselected updates are reported."""
    items = contributions(6, seed=3, outlier=10.0)
    accumulator = folded(NormFilter(Krum(f=0), 3.0), items)
    accumulator.result()
    reasons = [e.reason for e in accumulator.rejected]
    assert sum("median norm" in r for r in reasons) == 1
    assert sum("not selected by Krum" in r for r in reasons) == 4


def test_delegates_server_step_state_and_client_config() -> None:
    """Step, optimizer state and client hyper-parameters are the wrapped strategy's."""
    inner = FedAdam()
    strategy = NormFilter(inner, 3.0)
    stepped = strategy.step({"w": np.zeros(2, np.float32)}, {"w": np.ones(2, np.float32)})
    assert stepped["w"].shape == (2,)
    assert strategy.state().keys() == inner.state().keys() == {"m/w", "v/w"}
    assert make_strategy("fedprox", mu=0.5, norm_filter=2.0).client_config() == {"mu": 0.5}
    assert strategy.holds_updates
    assert strategy.label == f"{inner.label}+norm_filter(max_ratio=3)"


def test_refuses_bad_ratios_and_nesting() -> None:
    """max_ratio below 1 is a ConfigError; a filter around a filter is refused."""
    with pytest.raises(ConfigError, match=r"strategy\.norm_filter"):
        NormFilter(FedAvg(), 0.5)
    with pytest.raises(AggregationError, match="norm filter around a norm filter"):
        NormFilter(NormFilter(FedAvg()), 2.0)


def test_merge_refuses_another_ratio() -> None:
    """Partial aggregates filtered with different ratios do not merge."""
    with pytest.raises(AggregationError, match="cannot merge"):
        NormFilter(FedAvg(), 2.0).accumulator().merge(NormFilter(FedAvg(), 3.0).accumulator())
