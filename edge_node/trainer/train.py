"""Local training, run inside the trainer child process. Imports torch.

Only ``python -m edge_node.trainer`` (and tests) import this module; the always-on node talks to
the child through ``edge_node.trainer.runner`` and never loads torch.

One run: build the network from the spec, load the base weights, measure the loss, run
``epochs`` of Adam (``edge_node.trainer.adam``, which spares the 70 MB that ``torch.optim``
costs) over seeded shuffled mini-batches (FedAvg-style local epochs) with the
optional FedProx proximal term, measure the loss again and export ONNX. ``Budget`` is checked
before every batch and after every phase: a spent time budget ends the loop early (the result
is still valid), a peak RSS over the memory budget or a vanished parent ends the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from edge_node.trainer.adam import Adam
from edge_node.trainer.budget import Budget, DivergedError
from edge_node.trainer.job import TrainingConfig, TrainingJob, TrainingMetrics, TrainingResult
from edge_node.trainer.memory import peak_rss_mb
from fedge.models.networks import build_module, export_onnx, load_arrays, to_arrays

EVAL_BATCH = 256


@dataclass(frozen=True)
class LoopStats:
    epochs_completed: int
    batches: int
    stopped_early: bool
    train_s: float


def train(
    job: TrainingJob,
    *,
    budget: Budget | None = None,
    started: float | None = None,
    report: Callable[[str], None] = lambda line: None,
) -> TrainingResult:
    """Train ``job`` in this process and return the new weights, their ONNX graph and metrics."""
    started = time.monotonic() if started is None else started
    config = job.config
    budget = budget or Budget(config)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    module = build_module(job.spec)
    load_arrays(module, job.base)
    budget.check("building the model")

    windows = torch.from_numpy(np.require(job.windows, np.float32, ["C", "W"]))
    generator = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(windows.shape[0], generator=generator)
    held_out, train_index = order[: job.validation_samples], order[job.validation_samples :]
    evaluation = windows[held_out] if job.validation_samples else windows

    loss_before = _evaluate(module, evaluation, budget)
    report(f"loss before: {loss_before:.6g} on {evaluation.shape[0]} windows")
    stats = _optimise(module, windows, train_index, config, budget, generator, report)
    loss_after = _evaluate(module, evaluation, budget)
    report(f"loss after: {loss_after:.6g}")
    onnx = export_onnx(module, job.spec)
    budget.check("exporting ONNX")
    metrics = TrainingMetrics(
        loss_before=loss_before,
        loss_after=loss_after,
        samples=int(train_index.shape[0]),
        validation_samples=job.validation_samples,
        epochs_completed=stats.epochs_completed,
        batches=stats.batches,
        stopped_early=stats.stopped_early,
        train_s=round(stats.train_s, 4),
        duration_s=round(time.monotonic() - started, 4),
        peak_rss_mb=round(peak_rss_mb(), 1),
    )
    return TrainingResult(to_arrays(module), onnx, metrics)


def _optimise(  # noqa: PLR0917 - one private step of ``train``
    module: nn.Module,
    windows: torch.Tensor,
    train_index: torch.Tensor,
    config: TrainingConfig,
    budget: Budget,
    generator: torch.Generator,
    report: Callable[[str], None],
) -> LoopStats:
    """Local epochs of Adam on the reconstruction loss (+ the FedProx term when ``mu`` > 0)."""
    params = [p for p in module.parameters() if p.requires_grad]
    anchors = [p.detach().clone() for p in params] if config.mu > 0 else []
    optimiser = Adam(params, lr=config.lr)
    module.train()
    budget.start_clock()
    loop_start = time.monotonic()
    epochs = batches = 0
    value = math.nan
    for epoch in range(config.epochs):
        order = train_index[torch.randperm(train_index.shape[0], generator=generator)]
        for start in range(0, order.shape[0], config.batch_size):
            if budget.time_spent():
                report(f"time budget of {config.time_budget_s:g} s spent in epoch {epoch + 1}")
                return LoopStats(
                    epochs, batches, stopped_early=True, train_s=time.monotonic() - loop_start
                )
            budget.check("training")
            batch = windows[order[start : start + config.batch_size]]
            optimiser.zero_grad()
            loss = functional.mse_loss(module(batch), batch)
            if anchors:
                loss = loss + config.mu / 2 * _proximal(params, anchors)
            value = float(loss.item())
            if not math.isfinite(value):
                raise DivergedError(
                    f"loss became {value} in epoch {epoch + 1}, batch {start // config.batch_size}"
                    ": the weights are unusable (lower lr?)"
                )
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
            optimiser.step()
            batches += 1
        epochs += 1
        report(f"epoch {epochs}/{config.epochs}: last batch loss {value:.6g}")
    return LoopStats(epochs, batches, stopped_early=False, train_s=time.monotonic() - loop_start)


def _proximal(params: list[nn.Parameter], anchors: list[torch.Tensor]) -> torch.Tensor:
    """``sum ||w - w_base||^2`` over the trainable parameters."""
    total = torch.zeros(())
    for param, anchor in zip(params, anchors, strict=True):
        total = total + (param - anchor).pow(2).sum()
    return total


def _evaluate(module: nn.Module, windows: torch.Tensor, budget: Budget) -> float:
    """Mean squared reconstruction error over ``windows`` (the node's mean window score)."""
    module.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, windows.shape[0], EVAL_BATCH):
            batch = windows[start : start + EVAL_BATCH]
            total += float(functional.mse_loss(module(batch), batch, reduction="sum"))
            budget.check("evaluating")
    return total / windows.numel()
