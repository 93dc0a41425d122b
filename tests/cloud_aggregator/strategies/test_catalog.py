"""make_strategy: every name builds, parameters are validated, mistakes name the bad key."""

from __future__ import annotations

from typing import Any

import pytest

from cloud_aggregator.strategies import (
    STRATEGIES,
    FedAvg,
    MultiKrum,
    NormFilter,
    make_strategy,
)
from fedge.errors import ConfigError


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_name_builds_with_defaults(name: str) -> None:
    """Each catalogued name builds with default parameters and says what it keeps."""
    strategy = make_strategy(name)
    assert strategy.name == name
    assert strategy.memory.startswith("O(")
    assert strategy.holds_updates == (name in {"median", "trimmed_mean", "krum", "multikrum"})


def test_the_issue_names_are_all_there() -> None:
    """The names the configuration documents are exactly the catalogue's."""
    assert set(STRATEGIES) == {
        "fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad",
        "median", "trimmed_mean", "krum", "multikrum",
    }  # fmt: skip


def test_parameters_reach_the_strategy() -> None:
    """Given parameters are used, and params() reports them back."""
    strategy = make_strategy("multikrum", f=2, m=5)
    assert isinstance(strategy, MultiKrum)
    assert strategy.params() == {"f": 2, "m": 5}
    assert make_strategy("fedadam", eta=0.5).params()["eta"] == 0.5


def test_norm_filter_option_wraps() -> None:
    """norm_filter=K wraps the strategy; its name and params rebuild the pair."""
    strategy = make_strategy("fedavg", norm_filter=2.5)
    assert isinstance(strategy, NormFilter)
    assert isinstance(strategy.inner, FedAvg)
    assert (strategy.name, strategy.params()) == ("fedavg", {"norm_filter": 2.5})


def test_unknown_name_lists_the_choices() -> None:
    """An unknown strategy is a ConfigError listing the known ones."""
    with pytest.raises(ConfigError, match=r"unknown strategy 'fedsgd'.*fedavg") as caught:
        make_strategy("fedsgd")
    assert caught.value.key == "strategy"


def test_unknown_parameter_is_named() -> None:
    """A parameter the strategy does not take is a ConfigError naming it and the valid ones."""
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['lr'\]; fedavgm takes") as c:
        make_strategy("fedavgm", lr=0.1)
    assert c.value.key == "strategy.fedavgm"
    with pytest.raises(ConfigError, match="fedavg takes no parameters"):
        make_strategy("fedavg", mu=0.1)


@pytest.mark.parametrize(
    ("name", "params", "key"),
    [
        ("fedprox", {"mu": -0.1}, "strategy.fedprox.mu"),
        ("fedprox", {"mu": "0.1"}, "strategy.fedprox.mu"),
        ("fedavgm", {"momentum": 1.0}, "strategy.fedavgm.momentum"),
        ("fedavgm", {"server_lr": 0}, "strategy.fedavgm.server_lr"),
        ("fedadam", {"tau": 0.0}, "strategy.fedadam.tau"),
        ("fedyogi", {"beta2": 1.5}, "strategy.fedyogi.beta2"),
        ("fedadagrad", {"eta": float("nan")}, "strategy.fedadagrad.eta"),
        ("trimmed_mean", {"beta": 0.5}, "strategy.trimmed_mean.beta"),
        ("krum", {"f": -1}, "strategy.krum.f"),
        ("krum", {"f": True}, "strategy.krum.f"),
        ("multikrum", {"m": 0}, "strategy.multikrum.m"),
        ("multikrum", {"f": 1.5}, "strategy.multikrum.f"),
    ],
)
def test_bad_values_name_the_key(name: str, params: dict[str, Any], key: str) -> None:
    """Out-of-range or mistyped values are ConfigErrors keyed strategy.NAME.PARAM."""
    with pytest.raises(ConfigError) as caught:
        make_strategy(name, **params)
    assert caught.value.key == key


def test_bad_norm_filter_ratio() -> None:
    """norm_filter below 1 would drop the median update itself: refused."""
    with pytest.raises(ConfigError, match=r"strategy\.norm_filter"):
        make_strategy("median", norm_filter=0.9)
