"""Round selection and bookkeeping, without a broker."""

from __future__ import annotations

import pytest

from cloud_aggregator.config import RoundConfig
from cloud_aggregator.registry_records import RoundRecord
from cloud_aggregator.rounds import OpenRound, command_id, recruits, round_of, select_nodes
from cloud_aggregator.strategies.fedavg import FedAvg

NODES = [f"n{i}" for i in range(10)]


def _round(selected: tuple[str, ...], deadline: float | None = 100.0) -> OpenRound:
    record = RoundRecord(7, "default", 0, "open", {}, selected, 0.0, deadline, None, None, None)
    return OpenRound(record, FedAvg().accumulator())


@pytest.mark.parametrize(
    ("fraction", "min_nodes", "max_nodes", "expected"),
    [(1.0, 2, 0, 10), (0.3, 2, 0, 3), (0.05, 2, 0, 2), (1.0, 2, 4, 4), (0.25, 1, 0, 3)],
)
def test_selection_takes_a_fraction_within_min_and_max(
    fraction: float, min_nodes: int, max_nodes: int, expected: int
) -> None:
    """ceil(fraction x candidates), raised to min_nodes, capped at max_nodes."""
    config = RoundConfig(fraction=fraction, min_nodes=min_nodes, max_nodes=max_nodes)
    chosen = select_nodes(NODES, config, "k")
    assert len(chosen) == expected
    assert set(chosen) <= set(NODES)
    assert chosen == sorted(chosen)


def test_selection_is_empty_below_the_minimum_and_reproducible_by_key() -> None:
    """Too few candidates select nobody; the same key draws the same sample, another key not
    necessarily."""
    config = RoundConfig(fraction=0.5, min_nodes=3)
    assert select_nodes(["a", "b"], config, "k") == []
    assert select_nodes(NODES, config, "k") == select_nodes(list(reversed(NODES)), config, "k")
    draws = {tuple(select_nodes(NODES, config, str(key))) for key in range(20)}
    assert len(draws) > 1


def test_an_open_round_tracks_who_may_still_deliver() -> None:
    """Delivered, answered and dropped nodes are no longer outstanding; settled when none is."""
    current = _round(("a", "b", "c", "d"))
    current.delivered["a"] = "u1"
    current.answered["b"] = "command_refused: only 3 normal windows stored"
    current.dropped.add("c")
    assert current.outstanding() == ["d"]
    assert not current.settled()
    assert current.short(3)  # a + d at best
    assert not current.short(2)
    current.delivered["d"] = "u2"
    assert current.settled()
    assert current.overdue(100.0)
    assert not current.overdue(99.9)
    assert not _round(("a",), deadline=None).overdue(1e12)


def test_recruits_fill_only_what_a_round_lacks_and_respect_max_nodes() -> None:
    """A round short by one asks one node it has not asked; max_nodes caps the selection."""
    current = _round(("a", "b", "c"))
    current.delivered["a"] = "u1"
    current.dropped.add("c")
    config = RoundConfig(min_nodes=3)
    extra = recruits(["a", "b", "x", "y"], current, config)
    assert len(extra) == 1
    assert extra[0] in {"x", "y"}
    assert recruits(["x", "y"], current, RoundConfig(min_nodes=3, max_nodes=3)) == []


def test_summary_weights_training_metrics_by_samples() -> None:
    """The version's metrics: counts plus sample-weighted means of what nodes reported."""
    current = _round(("a", "b"))
    current.delivered.update(a="u1", b="u2")
    current.samples.update(a=100, b=300)
    current.metrics.update(a={"loss": 1.0}, b={"loss": 2.0, "epochs": 1.0})
    summary = current.summary()
    assert summary["updates"] == 2
    assert summary["samples"] == 400
    assert summary["mean_loss"] == pytest.approx(1.75)
    assert summary["mean_epochs"] == pytest.approx(1.0)


def test_command_ids_name_their_round() -> None:
    """A round's command id maps back to its round; other ids map to None."""
    first, second = command_id(12), command_id(12)
    assert first != second
    assert round_of(first) == 12
    assert round_of("f00") is None
    assert round_of("round.x.ab") is None
