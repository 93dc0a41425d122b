"""Strategies by name: what the aggregator's configuration and the registry refer to.

``make_strategy(name, **params)`` builds one, validating every parameter (``ConfigError``
naming ``strategy.NAME.PARAM`` otherwise); ``norm_filter=K`` wraps it in a ``NormFilter``.
``make_strategy(s.name, **s.params())`` rebuilds any strategy, which is how the registry
stores the one a model uses.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Final

from cloud_aggregator.strategies.base import Strategy
from cloud_aggregator.strategies.fedadagrad import FedAdagrad
from cloud_aggregator.strategies.fedadam import FedAdam
from cloud_aggregator.strategies.fedavg import FedAvg
from cloud_aggregator.strategies.fedavgm import FedAvgM
from cloud_aggregator.strategies.fedprox import FedProx
from cloud_aggregator.strategies.fedyogi import FedYogi
from cloud_aggregator.strategies.krum import Krum, MultiKrum
from cloud_aggregator.strategies.median import Median
from cloud_aggregator.strategies.norm_filter import NormFilter
from cloud_aggregator.strategies.trimmed_mean import TrimmedMean
from fedge.errors import ConfigError

STRATEGIES: Final[Mapping[str, Callable[..., Strategy]]] = {
    cls.name: cls
    for cls in (
        FedAvg,
        FedProx,
        FedAvgM,
        FedAdam,
        FedYogi,
        FedAdagrad,
        Median,
        TrimmedMean,
        Krum,
        MultiKrum,
    )
}


def make_strategy(name: str, /, *, norm_filter: float | None = None, **params: object) -> Strategy:
    """The strategy called ``name`` with ``params``; ``norm_filter`` wraps it in a NormFilter."""
    factory = STRATEGIES.get(name)
    if factory is None:
        raise ConfigError(
            "strategy", f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}"
        )
    accepted = list(inspect.signature(factory).parameters)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no parameters"
        raise ConfigError(
            f"strategy.{name}", f"unknown parameter(s) {unknown}; {name} takes {takes}"
        )
    strategy = factory(**params)
    return strategy if norm_filter is None else NormFilter(strategy, norm_filter)
