"""Small jobs for the trainer tests: a 16 x 3 window, learnable synthetic signals."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from edge_node.trainer import TrainingConfig, TrainingJob
from fedge.models import ModelSpec
from fedge.wire import Plain

WINDOW: Final = 16
CHANNELS: Final = 3
ROOT: Final = Path(__file__).resolve().parents[3]
SMALL_PARAMS: Final[Mapping[str, dict[str, Plain]]] = {
    "dense_ae": {"hidden": [16, 4]},
    "conv_ae": {"filters": [8, 8], "kernel": 3},
}


def spec(architecture: str = "dense_ae") -> ModelSpec:
    return ModelSpec(architecture, WINDOW, CHANNELS, SMALL_PARAMS.get(architecture, {}))


def windows(count: int, seed: int = 0) -> NDArray[np.float32]:
    """Phase-shifted sines with a little noise: an autoencoder learns them within an epoch."""
    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW)[None, :, None] + rng.uniform(0, 50, (count, 1, 1))
    phase = np.arange(CHANNELS)[None, None, :]
    noise = 0.05 * rng.standard_normal((count, WINDOW, CHANNELS))
    return (np.sin(t / 3 + phase) + noise).astype(np.float32)


def base_arrays(model: ModelSpec, seed: int = 0) -> dict[str, NDArray[np.float32]]:
    """Freshly initialised weights for ``model`` (imports torch)."""
    from fedge.models.networks import build_module, to_arrays  # noqa: PLC0415 - torch on demand

    return to_arrays(build_module(model, seed=seed))


UNBUDGETED_MB = 1e6


def job(
    architecture: str = "dense_ae", count: int = 256, config: TrainingConfig | None = None
) -> TrainingJob:
    """A job for a built-in architecture on ``count`` windows of the synthetic signal."""
    model = spec(architecture)
    # In-process training measures the test runner's own RSS, which other tests have grown:
    # only tests about the budget set one.
    config = config or TrainingConfig(memory_budget_mb=UNBUDGETED_MB)
    return TrainingJob(model, base_arrays(model), windows(count), config)


def child_env() -> dict[str, str]:
    """Environment for trainer children: the repository root importable (test user models)."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(paths)}


def l2_distance(
    a: Mapping[str, NDArray[np.float32]], b: Mapping[str, NDArray[np.float32]]
) -> float:
    """Euclidean distance between two sets of named weights."""
    return float(np.sqrt(sum(np.sum((a[k] - b[k]) ** 2, dtype=np.float64) for k in a)))
