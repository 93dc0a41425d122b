"""Aggregation strategies as folds: fold updates as they arrive, merge partials, step the model.

See ``docs/strategies.md``. ``base`` holds the protocol, each strategy has its own module, and
``catalog.make_strategy`` builds one by name.
"""

from cloud_aggregator.strategies.base import (
    Accumulator,
    AggregationError,
    Contribution,
    ContributionError,
    Exclusion,
    Strategy,
)
from cloud_aggregator.strategies.catalog import STRATEGIES, make_strategy
from cloud_aggregator.strategies.fedadagrad import FedAdagrad
from cloud_aggregator.strategies.fedadam import FedAdam
from cloud_aggregator.strategies.fedavg import FedAvg, WeightedMean
from cloud_aggregator.strategies.fedavgm import FedAvgM
from cloud_aggregator.strategies.fedbuff import AsyncBuffer, BufferFlush, Staleness
from cloud_aggregator.strategies.fedprox import FedProx
from cloud_aggregator.strategies.fedyogi import FedYogi
from cloud_aggregator.strategies.krum import Krum, MultiKrum
from cloud_aggregator.strategies.median import Median
from cloud_aggregator.strategies.norm_filter import NormFilter
from cloud_aggregator.strategies.trimmed_mean import TrimmedMean

__all__ = [
    "STRATEGIES",
    "Accumulator",
    "AggregationError",
    "AsyncBuffer",
    "BufferFlush",
    "Contribution",
    "ContributionError",
    "Exclusion",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "FedYogi",
    "Krum",
    "Median",
    "MultiKrum",
    "NormFilter",
    "Staleness",
    "Strategy",
    "TrimmedMean",
    "WeightedMean",
    "make_strategy",
]
