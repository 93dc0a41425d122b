"""The [aggregator] table and its flags: defaults, overrides, and errors that name the key."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from cloud_aggregator.config import AGGREGATOR_KEYS, aggregator_config, describe
from cloud_aggregator.strategies.fedbuff import Staleness
from fedge.errors import FedgeError


def _args(**flags: Any) -> argparse.Namespace:
    return argparse.Namespace(**flags)


def test_defaults_need_no_table() -> None:
    """An empty table gives FedAvg rounds of at least two nodes over a dense autoencoder."""
    config = aggregator_config(_args(), {})
    assert config.model == "default"
    assert config.strategy == "fedavg"
    assert config.spec.architecture == "dense_ae"
    assert config.rounds.min_nodes == 2
    assert config.rounds.enabled
    assert config.rounds.only_finished
    assert config.buffer.staleness == Staleness.polynomial(0.5)
    assert config.norm_filter is None


def test_flags_win_over_the_table_and_every_key_is_read() -> None:
    """Flags override table values; each documented key reaches the config."""
    table: dict[str, Any] = {
        "model": "pumps", "registry": "r.db", "architecture": "conv_ae", "window": 30,
        "channels": 6, "model_params": {}, "seed": 3, "init": "", "strategy": "fedadam",
        "strategy_params": {"eta": 0.1}, "norm_filter": 3.0, "sync_rounds": False,
        "rounds": 4, "round_interval_s": 1.0, "fraction": 0.5, "min_nodes": 3, "max_nodes": 5,
        "only_finished": False, "deadline_s": 30.0, "on_short": "abort", "max_extensions": 0,
        "epochs": 2, "lr": 0.01, "max_staleness": 3, "buffer_k": 4, "buffer_max_wait_s": 9.0,
        "staleness": "hinge", "staleness_a": 2.0, "staleness_b": 1, "presence_timeout_s": 20.0,
        "max_update_mb": 1.0,
    }  # fmt: skip
    assert set(table) == AGGREGATOR_KEYS
    config = aggregator_config(_args(min_nodes=4, registry="flag.db"), table)
    assert config.rounds.min_nodes == 4
    assert config.registry == Path("flag.db")
    assert (config.spec.architecture, config.spec.window, config.spec.channels) == (
        "conv_ae",
        30,
        6,
    )
    assert config.strategy_params == {"eta": 0.1}
    assert config.norm_filter == 3.0
    assert not config.rounds.enabled
    assert not config.rounds.only_finished
    assert config.rounds.on_short == "abort"
    assert config.buffer.k == 4
    assert config.buffer.staleness == Staleness.hinge(2.0, 1)
    assert config.max_update_bytes == 1024 * 1024
    assert describe(config)["strategy"] == "fedadam"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"strategy": "fedmagic"}, "strategy"),
        ({"strategy_params": {"mu": 1.0}}, "strategy.fedavg"),
        ({"fraction": 0.0}, "aggregator.fraction"),
        ({"min_nodes": 3, "max_nodes": 2}, "aggregator.max_nodes"),
        ({"on_short": "wait"}, "aggregator.on_short"),
        ({"deadline_s": -1}, "aggregator.deadline_s"),
        ({"buffer_k": 0}, "aggregator.buffer_k"),
        ({"staleness": "linear"}, "aggregator.staleness"),
        ({"model": "a/b"}, "model"),
        ({"window": "wide"}, "aggregator"),
        ({"model_params": 3}, "aggregator.model_params"),
    ],
)
def test_bad_values_are_refused_naming_the_key(table: dict[str, Any], key: str) -> None:
    """Each bad value raises a FedgeError whose message names what is wrong."""
    with pytest.raises(FedgeError) as caught:
        aggregator_config(_args(), table)
    assert key in str(caught.value)
