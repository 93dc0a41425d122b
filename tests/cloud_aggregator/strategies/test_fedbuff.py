"""FedBuff: stale updates count less, too-stale ones are refused, K or a timeout flushes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cloud_aggregator.strategies import (
    AggregationError,
    AsyncBuffer,
    Contribution,
    FedAvg,
    Median,
    Staleness,
)
from fedge.errors import ConfigError


def _update(node: str, value: float, samples: float = 1.0) -> Contribution:
    return Contribution(node, {"w": np.full(3, value, np.float32)}, samples, f"{node}-u")


def test_staleness_functions() -> None:
    """constant, polynomial (1 + tau)^-a and hinge give the documented factors."""
    assert Staleness.constant()(7) == 1.0
    assert Staleness()(3) == pytest.approx(0.5)  # default: 1 / sqrt(1 + tau)
    assert Staleness.polynomial(a=1.0)(4) == pytest.approx(0.2)
    hinge = Staleness.hinge(a=10.0, b=4)
    assert hinge(4) == 1.0
    assert hinge(5) == pytest.approx(1 / 11)
    assert hinge(6) == pytest.approx(1 / 21)


def test_stale_updates_count_less() -> None:
    """Equal samples, tau 0 and 3: delta = (1 * x0 + 0.5 * x1) / 2, FedBuff's (1/K) sum."""
    buffer = AsyncBuffer(FedAvg(), k=2, version=5)
    assert buffer.fold(_update("fresh", 2.0), base_version=5, now=0.0) is None
    assert buffer.fold(_update("stale", 4.0), base_version=2, now=1.0) is None
    flushed = buffer.flush()
    np.testing.assert_allclose(flushed.delta["w"], (2.0 + 0.5 * 4.0) / 2)
    assert (flushed.base_version, flushed.staleness) == (5, (0, 3))
    assert flushed.update_ids == ("fresh-u", "stale-u")


def test_samples_and_staleness_weight_together() -> None:
    """Weights are samples x s(tau), normalised by the samples: sum n s x / sum n."""
    buffer = AsyncBuffer(FedAvg(), k=3, version=8, staleness=Staleness.polynomial(1.0))
    buffer.fold(_update("a", 1.0, samples=30), base_version=8, now=0.0)
    buffer.fold(_update("b", 1.0, samples=10), base_version=7, now=0.0)
    expected = (30 * 1.0 + 10 * 0.5) / 40
    np.testing.assert_allclose(buffer.flush().delta["w"], expected, rtol=1e-6)


def test_constant_staleness_is_fedavg() -> None:
    """With s = 1 the buffer's delta is the plain FedAvg of its updates."""
    buffer = AsyncBuffer(FedAvg(), staleness=Staleness.constant(), version=4)
    buffer.fold(_update("a", 1.0, 1.0), 0, 0.0)
    buffer.fold(_update("b", 4.0, 3.0), 3, 0.0)
    np.testing.assert_allclose(buffer.flush().delta["w"], 13.0 / 4.0)


def test_too_stale_and_future_updates_are_refused_and_named() -> None:
    """tau > max_staleness and a base newer than the buffer's version are rejected."""
    buffer = AsyncBuffer(FedAvg(), max_staleness=3, version=10)
    old = buffer.fold(_update("old", 1.0), base_version=6, now=0.0)
    future = buffer.fold(_update("ahead", 1.0), base_version=11, now=0.0)
    assert old is not None
    assert old.node == "old"
    assert "4 versions behind 10 (limit 3)" in old.reason
    assert future is not None
    assert "newer than the current 10" in future.reason
    assert (buffer.count, buffer.ready(now=1e9)) == (0, False)
    buffer.fold(_update("ok", 1.0), base_version=7, now=0.0)
    assert [r.node for r in buffer.flush().rejected] == ["old", "ahead"]
    assert buffer.rejected == []


def test_ready_after_k_updates() -> None:
    """ready() turns true at the K-th update."""
    buffer = AsyncBuffer(FedAvg(), k=3, max_wait_s=100.0)
    for i in range(3):
        assert not buffer.ready(now=float(i))
        buffer.fold(_update(f"n{i}", 1.0), 0, now=float(i))
    assert buffer.ready(now=3.0)


def test_ready_when_the_oldest_update_waited_max_wait() -> None:
    """One update is flushed once it has waited max_wait_s, counted from its arrival."""
    buffer = AsyncBuffer(FedAvg(), k=10, max_wait_s=30.0)
    assert not buffer.ready(now=1000.0)  # empty: nothing to wait for
    buffer.fold(_update("a", 1.0), 0, now=100.0)
    buffer.fold(_update("b", 1.0), 0, now=125.0)
    assert not buffer.ready(now=129.9)
    assert buffer.ready(now=130.0)


def test_flush_resets_and_empty_flush_raises() -> None:
    """After a flush the buffer is empty, not ready, and a second flush is an error."""
    buffer = AsyncBuffer(FedAvg(), k=1)
    buffer.fold(_update("a", 1.0), 0, now=0.0)
    buffer.flush()
    assert (buffer.count, buffer.ready(now=1e9)) == (0, False)
    with pytest.raises(AggregationError, match="empty"):
        buffer.flush()


def test_versions_only_move_forward() -> None:
    """advance_to records a new version; going back is an error; staleness follows it."""
    buffer = AsyncBuffer(FedAvg(), version=3)
    buffer.advance_to(5)
    with pytest.raises(AggregationError, match="older"):
        buffer.advance_to(4)
    buffer.fold(_update("a", 1.0), base_version=4, now=0.0)
    assert buffer.flush().staleness == (1,)


def test_robust_strategy_gets_the_overall_discount() -> None:
    """A median ignores weights, so staleness acts only as the overall discount."""
    buffer = AsyncBuffer(Median(), version=3)
    for node, value in (("a", 1.0), ("b", 2.0), ("c", 3.0)):
        buffer.fold(_update(node, value), base_version=0, now=0.0)
    np.testing.assert_allclose(buffer.flush().delta["w"], 2.0 * 0.5)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"k": 0}, "fedbuff.k"),
        ({"max_wait_s": 0.0}, "fedbuff.max_wait_s"),
        ({"max_staleness": -1}, "fedbuff.max_staleness"),
    ],
)
def test_bad_buffer_settings(kwargs: dict[str, float], key: str) -> None:
    """Nonsense settings are ConfigErrors naming the setting."""
    with pytest.raises(ConfigError, match=key):
        AsyncBuffer(FedAvg(), **kwargs)  # type: ignore[arg-type]  # deliberately wrong values


def test_bad_staleness_settings() -> None:
    """An unknown kind or a negative exponent is a ConfigError."""
    with pytest.raises(ConfigError, match=r"staleness\.kind"):
        Staleness("linear")  # type: ignore[arg-type]  # deliberately not a kind
    with pytest.raises(ConfigError, match=r"staleness\.a"):
        Staleness.polynomial(a=-1.0)
    assert math.isclose(Staleness.polynomial(a=0.0)(9), 1.0)
