"""The aggregator's settings: the ``[aggregator]`` table of the config file, flags over it.

Every key, with its default (docs/aggregator.md explains each)::

    [aggregator]
    model = "default"               # the model name nodes follow (models/{model}/global)
    registry = "fedge-aggregator.db"
    architecture = "dense_ae"       # bootstrap: built-in architecture or package.module:Class
    window = 60                     # ... over windows of this many readings
    channels = 8                    # ... of this many channels
    model_params = {}               # ... with these parameters (e.g. hidden = [64, 16])
    seed = 0                        # ... initialised with this seed
    init = ""                       # or start from a .npz of named arrays / an .onnx file
    strategy = "fedavg"
    strategy_params = {}            # e.g. {eta = 0.1} for fedadam (docs/strategies.md)
    norm_filter = 0.0               # > 0: drop updates whose norm exceeds K x the median
    sync_rounds = true              # false: no synchronous rounds, only the async buffer
    rounds = 0                      # synchronous rounds to run; 0 = run rounds forever
    round_interval_s = 5.0          # pause between one round's end and the next round's start
    fraction = 1.0                  # share of the live train-capable nodes asked per round
    min_nodes = 2                   # fewest updates a round aggregates (and nodes it asks)
    max_nodes = 0                   # most nodes asked per round; 0 = no limit
    only_finished = true            # skip nodes still busy with an earlier round
    deadline_s = 120.0              # how long a round waits for updates
    on_short = "extend"             # too few updates at the deadline: "extend" or "abort"
    max_extensions = 2              # extensions (each deadline_s long) before aborting
    epochs = 1                      # hyper-parameters sent in each train command
    lr = 0.001
    max_staleness = 5               # async updates: versions an update may lag behind
    buffer_k = 10                   # FedBuff: a new version every K async updates ...
    buffer_max_wait_s = 300.0       # ... or once the oldest has waited this long
    staleness = "polynomial"        # staleness weight: constant, polynomial or hinge
    staleness_a = 0.5               # polynomial: (1 + tau) ** -a; hinge: slope a ...
    staleness_b = 4                 # ... after b versions
    presence_timeout_s = 90.0       # a node silent this long counts as gone
    max_update_mb = 64.0            # larger updates are rejected
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from cloud_aggregator.strategies.catalog import make_strategy
from cloud_aggregator.strategies.fedbuff import Staleness
from fedge.errors import ConfigError
from fedge.models import ModelSpec
from fedge.topics import validate_id
from fedge.wire import Plain

OnShort = Literal["extend", "abort"]


@dataclass(frozen=True)
class RoundConfig:
    """How synchronous rounds select nodes, wait, and what they ask for."""

    enabled: bool = True
    rounds: int = 0
    interval_s: float = 5.0
    fraction: float = 1.0
    min_nodes: int = 2
    max_nodes: int = 0
    only_finished: bool = True
    deadline_s: float = 120.0
    on_short: OnShort = "extend"
    max_extensions: int = 2
    epochs: int = 1
    lr: float = 1e-3

    def __post_init__(self) -> None:
        checks = (
            ("rounds", self.rounds, self.rounds >= 0, "must be >= 0 (0 runs rounds forever)"),
            ("round_interval_s", self.interval_s, self.interval_s >= 0, "must be >= 0"),
            ("fraction", self.fraction, 0 < self.fraction <= 1, "must be in (0, 1]"),
            ("min_nodes", self.min_nodes, self.min_nodes >= 1, "must be >= 1"),
            ("max_nodes", self.max_nodes, self.max_nodes == 0 or self.max_nodes >= self.min_nodes,
             "must be 0 (no limit) or >= min_nodes"),
            ("deadline_s", self.deadline_s, self.deadline_s > 0, "must be > 0"),
            ("on_short", self.on_short, self.on_short in ("extend", "abort"),
             "must be 'extend' or 'abort'"),
            ("max_extensions", self.max_extensions, self.max_extensions >= 0, "must be >= 0"),
            ("epochs", self.epochs, self.epochs >= 1, "must be >= 1"),
            ("lr", self.lr, self.lr > 0, "must be > 0"),
        )  # fmt: skip
        for key, value, ok, rule in checks:
            if not ok:
                raise ConfigError(f"aggregator.{key}", f"{value!r} {rule}")


@dataclass(frozen=True)
class BufferConfig:
    """FedBuff: updates that arrive outside a round."""

    k: int = 10
    max_wait_s: float = 300.0
    max_staleness: int = 5
    staleness: Staleness = field(default_factory=Staleness)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError("aggregator.buffer_k", f"{self.k} must be >= 1")
        if self.max_wait_s <= 0:
            raise ConfigError("aggregator.buffer_max_wait_s", f"{self.max_wait_s} must be > 0")
        if self.max_staleness < 0:
            raise ConfigError("aggregator.max_staleness", f"{self.max_staleness} must be >= 0")


@dataclass(frozen=True)
class AggregatorConfig:
    """Everything one aggregator process needs besides its broker connection."""

    model: str = "default"
    registry: Path = Path("fedge-aggregator.db")
    spec: ModelSpec = field(default_factory=lambda: ModelSpec("dense_ae", 60, 8))
    seed: int = 0
    init: Path | None = None
    strategy: str = "fedavg"
    strategy_params: dict[str, Plain] = field(default_factory=dict)
    norm_filter: float | None = None
    rounds: RoundConfig = field(default_factory=RoundConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    presence_timeout_s: float = 90.0
    max_update_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        validate_id("model", self.model)
        if self.presence_timeout_s <= 0:
            raise ConfigError("aggregator.presence_timeout_s", "must be > 0")
        if self.max_update_bytes <= 0:
            raise ConfigError("aggregator.max_update_mb", "must be > 0")
        make_strategy(self.strategy, norm_filter=self.norm_filter, **self.strategy_params)


AGGREGATOR_KEYS = frozenset(
    {
        "model", "registry", "architecture", "window", "channels", "model_params", "seed",
        "init", "strategy", "strategy_params", "norm_filter", "sync_rounds", "rounds",
        "round_interval_s", "fraction", "min_nodes", "max_nodes", "only_finished", "deadline_s",
        "on_short",
        "max_extensions", "epochs", "lr", "max_staleness", "buffer_k", "buffer_max_wait_s",
        "staleness", "staleness_a", "staleness_b", "presence_timeout_s", "max_update_mb",
    }
)  # fmt: skip


def aggregator_config(args: argparse.Namespace, table: dict[str, Any]) -> AggregatorConfig:
    """Merge flags (attribute names as the keys) over the [aggregator] table, validated."""

    def pick(name: str, default: Any = None) -> Any:
        value = getattr(args, name, None)
        return value if value is not None else table.get(name, default)

    try:
        spec = ModelSpec(
            str(pick("architecture", "dense_ae")),
            int(pick("window", 60)),
            int(pick("channels", 8)),
            _mapping("model_params", pick("model_params", {})),
        )
        rounds = RoundConfig(
            enabled=pick("sync_rounds", default=True) is not False,
            rounds=int(pick("rounds", 0)),
            interval_s=float(pick("round_interval_s", 5.0)),
            fraction=float(pick("fraction", 1.0)),
            min_nodes=int(pick("min_nodes", 2)),
            max_nodes=int(pick("max_nodes", 0)),
            only_finished=pick("only_finished", default=True) is not False,
            deadline_s=float(pick("deadline_s", 120.0)),
            on_short=pick("on_short", "extend"),
            max_extensions=int(pick("max_extensions", 2)),
            epochs=int(pick("epochs", 1)),
            lr=float(pick("lr", 1e-3)),
        )
        buffer = BufferConfig(
            k=int(pick("buffer_k", 10)),
            max_wait_s=float(pick("buffer_max_wait_s", 300.0)),
            max_staleness=int(pick("max_staleness", 5)),
            staleness=_staleness(
                str(pick("staleness", "polynomial")),
                float(pick("staleness_a", 0.5)),
                int(pick("staleness_b", 4)),
            ),
        )
        init = str(pick("init", ""))
        norm_filter = float(pick("norm_filter", 0.0))
        return AggregatorConfig(
            model=str(pick("model", "default")),
            registry=Path(pick("registry", "fedge-aggregator.db")),
            spec=spec,
            seed=int(pick("seed", 0)),
            init=Path(init) if init else None,
            strategy=str(pick("strategy", "fedavg")),
            strategy_params=_mapping("strategy_params", pick("strategy_params", {})),
            norm_filter=norm_filter if norm_filter > 0 else None,
            rounds=rounds,
            buffer=buffer,
            presence_timeout_s=float(pick("presence_timeout_s", 90.0)),
            max_update_bytes=int(float(pick("max_update_mb", 64.0)) * 1024 * 1024),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError("aggregator", str(exc)) from None


def _mapping(key: str, value: Any) -> dict[str, Plain]:
    if not isinstance(value, dict):
        raise ConfigError(f"aggregator.{key}", f"expected a table, got {value!r}")
    return dict(value)


def _staleness(kind: str, a: float, b: int) -> Staleness:
    if kind == "constant":
        return Staleness.constant()
    if kind == "polynomial":
        return Staleness.polynomial(a)
    if kind == "hinge":
        return Staleness.hinge(a, b)
    raise ConfigError("aggregator.staleness", f"{kind!r} is not one of constant, polynomial, hinge")


def describe(config: AggregatorConfig) -> dict[str, Plain]:
    """The round settings recorded with each round in the registry."""
    rounds = config.rounds
    return {
        "strategy": config.strategy,
        "strategy_params": dict(config.strategy_params),
        "norm_filter": config.norm_filter,
        **{f.name: getattr(rounds, f.name) for f in fields(rounds)},
    }
