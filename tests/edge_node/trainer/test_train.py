"""Training in process: loss, FedProx, ONNX export, budgets and determinism."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from edge_node.scorer import WindowScorer
from edge_node.trainer import TrainingConfig, TrainingJob
from edge_node.trainer.adam import Adam
from edge_node.trainer.budget import Budget, DivergedError, MemoryBudgetError, OrphanedError
from edge_node.trainer.train import train
from fedge.models.networks import build_module, load_arrays
from tests.edge_node.trainer.support import (
    CHANNELS,
    UNBUDGETED_MB,
    WINDOW,
    job,
    l2_distance,
    windows,
)


@pytest.mark.parametrize("architecture", ["dense_ae", "conv_ae"])
def test_training_reduces_the_reconstruction_loss(architecture: str) -> None:
    """A few local epochs on a learnable signal bring the loss well down."""
    # Prepare
    task = job(
        architecture,
        256,
        TrainingConfig(epochs=3, lr=1e-2, batch_size=32, memory_budget_mb=UNBUDGETED_MB),
    )

    # Execute
    result = train(task)

    # Assert
    m = result.metrics
    assert m.loss_after < 0.7 * m.loss_before
    assert (m.samples, m.epochs_completed, m.batches) == (256, 3, 24)
    assert not m.stopped_early
    assert m.peak_rss_mb > 0
    assert m.duration_s >= m.train_s > 0
    assert result.arrays.keys() == task.base.keys()


def test_fedprox_keeps_the_weights_closer_to_the_base() -> None:
    """With a large mu the weights move far less from the base than with mu = 0."""
    # Prepare
    config = TrainingConfig(epochs=3, lr=1e-2, batch_size=32, memory_budget_mb=UNBUDGETED_MB)
    plain_job = job("dense_ae", 256, config)
    prox_job = replace(plain_job, config=replace(config, mu=10.0))

    # Execute
    plain = train(plain_job)
    prox = train(prox_job)

    # Assert
    moved_plain = l2_distance(plain.arrays, plain_job.base)
    moved_prox = l2_distance(prox.arrays, prox_job.base)
    assert moved_prox < 0.5 * moved_plain


def test_exported_onnx_scores_like_the_trained_torch_module() -> None:
    """The node's WindowScorer accepts the ONNX graph and scores as torch reconstructs."""
    # Prepare
    task = job("conv_ae", 128, TrainingConfig(epochs=1, lr=1e-2, memory_budget_mb=UNBUDGETED_MB))
    result = train(task)
    probe = windows(50, seed=9)
    module = build_module(task.spec)
    load_arrays(module, result.arrays)
    module.eval()

    # Execute
    scores = WindowScorer(result.onnx, WINDOW, CHANNELS).score(probe).score
    with torch.no_grad():
        recon = module(torch.from_numpy(probe)).numpy()

    # Assert
    expected = np.square(recon - probe).mean(axis=(1, 2))
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-7)
    assert float(scores.mean()) == pytest.approx(result.metrics.loss_after, rel=0.5)


def test_a_spent_time_budget_stops_early_with_a_valid_result() -> None:
    """A budget that ends before the first batch still yields the base weights and an ONNX."""
    # Prepare
    task = job(
        "dense_ae",
        256,
        TrainingConfig(epochs=5, time_budget_s=1e-6, memory_budget_mb=UNBUDGETED_MB),
    )

    # Execute
    result = train(task)

    # Assert
    assert result.metrics.stopped_early
    assert (result.metrics.epochs_completed, result.metrics.batches) == (0, 0)
    assert result.metrics.loss_after == result.metrics.loss_before
    assert l2_distance(result.arrays, task.base) == 0.0
    WindowScorer(result.onnx, WINDOW, CHANNELS)  # the node accepts it


def test_the_same_seed_gives_the_same_weights() -> None:
    """Shuffling and updates are seeded: two runs agree bit for bit; another seed differs."""
    task = job("dense_ae", 128, TrainingConfig(epochs=2, memory_budget_mb=UNBUDGETED_MB))

    first, second = train(task), train(task)
    other = train(replace(task, config=replace(task.config, seed=1)))

    for name, array in first.arrays.items():
        np.testing.assert_array_equal(array, second.arrays[name])
    assert l2_distance(first.arrays, other.arrays) > 0


def test_validation_windows_are_held_out_of_training() -> None:
    """With a validation fraction, the losses are measured on windows the model never saw."""
    task = job(
        "dense_ae", 100, TrainingConfig(validation_fraction=0.2, memory_budget_mb=UNBUDGETED_MB)
    )

    result = train(task)

    assert (result.metrics.samples, result.metrics.validation_samples) == (80, 20)
    assert result.metrics.batches == 2  # 80 windows in batches of 64


def test_a_memory_budget_below_the_footprint_aborts() -> None:
    """The peak RSS of this process is far above 1 MB: MemoryBudgetError, no result."""
    with pytest.raises(MemoryBudgetError) as info:
        train(job("dense_ae", 32, TrainingConfig(memory_budget_mb=1.0)))

    assert info.value.budget_mb == 1.0
    assert info.value.peak_mb > 1.0


def test_a_diverging_loss_aborts() -> None:
    """Windows whose squares overflow float32 make the loss infinite: DivergedError."""
    task = job("dense_ae", 32)
    huge = TrainingJob(task.spec, task.base, np.full_like(task.windows, 1e30), task.config)

    with pytest.raises(DivergedError, match="loss became"):
        train(huge)


def test_an_orphaned_trainer_stops() -> None:
    """A parent pid that is not ours means the node is gone: OrphanedError."""
    budget = Budget(TrainingConfig(memory_budget_mb=UNBUDGETED_MB), parent_pid=os.getppid() + 1)

    with pytest.raises(OrphanedError):
        budget.check("training")


def test_adam_updates_like_torch_optim_adam() -> None:
    """The torch.optim-free Adam gives torch.optim.Adam's weights after several steps."""
    # Prepare
    task = job("dense_ae", 64)
    ours, theirs = build_module(task.spec), build_module(task.spec)
    load_arrays(ours, task.base)
    load_arrays(theirs, task.base)
    ours_opt = Adam(list(ours.parameters()), lr=1e-2)
    theirs_opt = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    batch = torch.from_numpy(task.windows)

    # Execute
    for _ in range(5):
        for module, optimiser in ((ours, ours_opt), (theirs, theirs_opt)):
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(module(batch), batch)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()

    # Assert
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
