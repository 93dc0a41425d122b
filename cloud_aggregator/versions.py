"""Global versions on the aggregator: the first one (bootstrap or resume) and each next one.

A next version is the strategy's server step applied to the current arrays and an aggregated
delta, with its ONNX graph exported from the result, so every published version carries both
what aggregation works on and what the edge runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from cloud_aggregator import artifacts
from cloud_aggregator.config import AggregatorConfig
from cloud_aggregator.registry import Registry, StrategyState
from cloud_aggregator.strategies.base import Arrays, Strategy
from fedge.models import ModelSpec
from fedge.wire import GlobalModel

log = logging.getLogger(__name__)


def load_or_bootstrap(registry: Registry, config: AggregatorConfig, now: float) -> GlobalModel:
    """The model's current version from the registry, or version 0 built and stored now."""
    model = config.model
    stored = registry.current_version(model)
    if stored is not None:
        if stored.global_model.architecture != config.spec.to_plain():
            log.warning(
                "registry %s holds %s as %s; the configured %s applies only to a new registry",
                registry.path,
                model,
                stored.global_model.architecture,
                config.spec.to_plain(),
            )
        log.info("resuming %s at version %d", model, stored.version)
        return stored.global_model
    arrays, onnx = artifacts.bootstrap(config.spec, config.seed, config.init)
    first = GlobalModel(
        model,
        0,
        arrays,
        onnx,
        config.spec.to_plain(),
        metrics={"seed": float(config.seed)},
        created_at=now,
    )
    registry.put_version(first, origin="bootstrap")
    log.info("bootstrapped %s version 0 (%s)", model, config.spec.architecture)
    return first


def next_version(
    strategy: Strategy,
    base: GlobalModel,
    delta: Arrays,
    metrics: Mapping[str, float],
    now: float,
) -> GlobalModel:
    """``base`` moved by the strategy's server step on ``delta``, exported to ONNX."""
    arrays = strategy.step(base.arrays, delta)
    spec = ModelSpec.from_plain(base.architecture)
    return GlobalModel(
        base.model,
        base.version + 1,
        arrays,
        artifacts.export(spec, arrays),
        base.architecture,
        parent_version=base.version,
        metrics=dict(metrics),
        created_at=now,
    )


def strategy_state(strategy: Strategy, version: int) -> StrategyState:
    """What the registry stores with ``version`` so a restart continues the server optimizer."""
    return StrategyState(strategy.name, strategy.state(), {"version": version})
