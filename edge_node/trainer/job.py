"""What a training job is and what it yields, torch-free: the values both processes share.

The node builds a ``TrainingJob`` (architecture spec, base weights by state-dict name, a
snapshot of normalised windows, a ``TrainingConfig``); the trainer child turns it into a
``TrainingResult`` (new weights, ONNX bytes, ``TrainingMetrics``). Every constructor validates
its values, so a job that reaches the child, or a result that reaches the node, is usable.
How they travel between the processes is in ``edge_node.trainer.files``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

import numpy as np
from numpy.typing import NDArray

from fedge.errors import ConfigError, FedgeError
from fedge.models import ModelSpec
from fedge.wire import Plain

MAX_ARRAY_NDIM: Final = 8


class JobError(FedgeError):
    """A job or result is unusable; ``source`` names the file or field, ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class TrainerExit(IntEnum):
    """Exit codes of ``python -m edge_node.trainer``: how the runner tells failures apart."""

    OK = 0
    CRASHED = 1  # an unexpected exception; the traceback is in the log
    INVALID_JOB = 3  # the job directory or the spec/weights it holds cannot be used
    MEMORY = 4  # the peak RSS went over ``memory_budget_mb``
    ORPHANED = 5  # the node that started the trainer is gone


@dataclass(frozen=True)
class TrainingConfig:
    """How to train: FedAvg-style local epochs with Adam, optionally FedProx, within budgets.

    ``mu`` > 0 adds the FedProx proximal term ``mu / 2 * ||w - w_base||^2`` to the loss.
    ``time_budget_s`` bounds the optimisation loop (checked before every batch; when spent the
    trainer stops early and still returns a result). ``memory_budget_mb`` bounds the trainer's
    peak resident memory (torch included); going over it is a failure. ``threads`` is torch's
    intra-op thread count: 1 leaves the other core of a two-core device to inference.
    ``validation_fraction`` of the windows is held out to measure the loss before and after;
    with 0 the loss is measured on the training windows. ``nice`` lowers the trainer's CPU
    priority so that inference wins when both want the same core.
    """

    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 64
    mu: float = 0.0
    time_budget_s: float = 60.0
    memory_budget_mb: float = 400.0
    seed: int = 0
    threads: int = 1
    validation_fraction: float = 0.0
    nice: int = 10

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            lo, hi = _CONFIG_RANGES[f.name]
            _check_value(f.name, getattr(self, f.name), lo, hi, integer=f.type == "int")

    def to_plain(self) -> dict[str, Plain]:
        return dataclasses.asdict(self)

    @classmethod
    def from_plain(cls, plain: Mapping[str, object]) -> TrainingConfig:
        """The config a plain map describes; absent keys take their defaults, unknown ones fail."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(plain) - known)
        if unknown:
            raise ConfigError("trainer", f"unknown keys {unknown}; known: {sorted(known)}")
        values = dict(plain)
        return cls(**values)  # type: ignore[arg-type]  # each value is checked on init


@dataclass(frozen=True)
class TrainingJob:
    """Everything the trainer child needs: spec, base weights, normalised windows, config."""

    spec: ModelSpec
    base: Mapping[str, NDArray[np.float32]]
    windows: NDArray[np.float32]  # (n, w, c), normalised like the node scores them
    config: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        check_named_arrays("base", self.base)
        check_windows("windows", self.windows, self.spec)
        if self.training_samples < 1:
            raise JobError(
                "windows",
                f"{self.windows.shape[0]} windows leave none to train on after holding out "
                f"{self.validation_samples} for validation",
            )

    @property
    def validation_samples(self) -> int:
        """Windows held out to measure the loss (0: the loss is measured on training windows)."""
        fraction = self.config.validation_fraction
        if fraction == 0.0:
            return 0
        return max(1, round(int(self.windows.shape[0]) * fraction))

    @property
    def training_samples(self) -> int:
        return int(self.windows.shape[0]) - self.validation_samples


@dataclass(frozen=True)
class TrainingMetrics:
    """What one training run did and cost.

    Losses are mean squared reconstruction errors (the node's window score, averaged) on the
    validation windows, or on the training windows when none are held out. ``train_s`` is the
    optimisation loop; ``duration_s`` the whole child run, torch import and export included.
    ``peak_rss_mb`` is the child's peak resident memory (VmHWM).
    """

    loss_before: float
    loss_after: float
    samples: int
    validation_samples: int
    epochs_completed: int
    batches: int
    stopped_early: bool
    train_s: float
    duration_s: float
    peak_rss_mb: float

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            wanted = bool if f.type == "bool" else int if f.type == "int" else float
            if type(value) is not wanted and not (wanted is float and type(value) is int):
                raise JobError(f"metrics.{f.name}", f"{value!r} is not a {wanted.__name__}")
            if not math.isfinite(value) or value < 0:
                raise JobError(f"metrics.{f.name}", f"{value!r} must be finite and >= 0")

    def to_plain(self) -> dict[str, Plain]:
        return dataclasses.asdict(self)

    def as_floats(self) -> dict[str, float]:
        """The metrics as the float map a ``ModelUpdate`` carries (``stopped_early`` as 0/1)."""
        return {k: float(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_plain(cls, plain: Mapping[str, object]) -> TrainingMetrics:
        names = {f.name for f in dataclasses.fields(cls)}
        if set(plain) != names:
            raise JobError(
                "metrics",
                f"keys {sorted(plain)} differ from {sorted(names)} "
                f"(missing {sorted(names - set(plain))})",
            )
        return cls(**plain)  # type: ignore[arg-type]  # each value's type is checked on init


@dataclass(frozen=True)
class TrainingResult:
    """New weights (same names and shapes as the base), their ONNX graph, and the metrics."""

    arrays: Mapping[str, NDArray[np.float32]]
    onnx: bytes
    metrics: TrainingMetrics

    def __post_init__(self) -> None:
        check_named_arrays("arrays", self.arrays)
        if not self.onnx:
            raise JobError("onnx", "the ONNX graph is empty")

    def check_matches(self, base: Mapping[str, NDArray[np.float32]]) -> None:
        """Refuse weights that are not the base's names and shapes (a mixed-up result)."""
        if set(self.arrays) != set(base):
            raise JobError(
                "arrays",
                f"names differ from the base: missing {sorted(set(base) - set(self.arrays))}, "
                f"extra {sorted(set(self.arrays) - set(base))}",
            )
        for name, array in self.arrays.items():
            if array.shape != base[name].shape:
                raise JobError(
                    f"arrays.{name}", f"shape {array.shape}, expected {base[name].shape}"
                )


def check_named_arrays(source: str, arrays: Mapping[str, NDArray[np.float32]]) -> None:
    """At least one array; each named, float32, at most 8-D and finite."""
    if not arrays:
        raise JobError(source, "holds no arrays")
    for name, array in arrays.items():
        where = f"{source}.{name}"
        if not isinstance(name, str) or not name or len(name) > 256:
            raise JobError(source, f"array name {name!r} must be a non-empty string")
        if not isinstance(array, np.ndarray) or array.dtype != np.float32:
            raise JobError(where, f"is {_describe(array)}, expected a float32 array")
        if array.ndim > MAX_ARRAY_NDIM:
            raise JobError(where, f"has {array.ndim} dimensions, at most {MAX_ARRAY_NDIM}")
        if not np.isfinite(array).all():
            raise JobError(where, "contains NaN or infinity")


def check_windows(source: str, windows: NDArray[np.float32], spec: ModelSpec) -> None:
    """A finite float32 block of shape ``(n, w, c)`` for the spec's window, ``n`` >= 1."""
    if not isinstance(windows, np.ndarray) or windows.dtype != np.float32:
        raise JobError(source, f"is {_describe(windows)}, expected a float32 array")
    expected = (spec.window, spec.channels)
    if windows.ndim != 3 or windows.shape[1:] != expected or windows.shape[0] < 1:
        raise JobError(
            source, f"has shape {windows.shape}, expected (n >= 1, {expected[0]}, {expected[1]})"
        )
    if not np.isfinite(windows).all():
        raise JobError(source, "contains NaN or infinity")


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array"
    return type(value).__name__


def _check_value(key: str, value: object, lo: float, hi: float, *, integer: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"trainer.{key}", f"{value!r} is not a number")
    if integer and not isinstance(value, int):
        raise ConfigError(f"trainer.{key}", f"{value!r} must be an integer")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"trainer.{key}", f"{value!r} must be in [{lo:g}, {hi:g}]")


_CONFIG_RANGES: Final[Mapping[str, tuple[float, float]]] = {
    "epochs": (1, 10_000),
    "lr": (1e-12, 10.0),
    "batch_size": (1, 65_536),
    "mu": (0.0, 1e6),
    "time_budget_s": (1e-6, 7 * 86_400.0),
    "memory_budget_mb": (1.0, 1e7),
    "seed": (0, 2**63 - 1),
    "threads": (1, 256),
    "validation_fraction": (0.0, 0.5),
    "nice": (0, 19),
}
