"""``fedge bench train``: what local training costs an edge node on this machine.

For each built-in autoencoder over 60 x 8 windows (``dense_ae``, the default model, and
``conv_ae``): one local epoch on 1,000 windows, run exactly as a node runs it, through
``edge_node.trainer.runner`` in a trainer child process, ``--repeats`` times.

- ``trainer_wall_s``: from ``start_training`` to the validated result in the parent: job files,
  process start, torch import, training, evaluation, ONNX export, result files (median);
- ``trainer_train_s``: the optimisation loop alone, as the child measures it (median);
- ``trainer_peak_rss_mb``: the child's peak resident memory, VmHWM (largest of the repeats),
  against the target of 400 MB (``trainer_peak_rss_target_mb``).

The top-level figures are the default model's; ``architectures`` holds each one's. The trainer
runs with a generous memory budget here so that the figure is measured rather than enforced.

Figures of the always-on node (its RSS idle and while a trainer runs, the time from a drift
trigger to the swapped model) belong in ``node_figures``, merged into the same results.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from edge_node.trainer import TrainingConfig, TrainingJob, TrainingResult, start_training
from fedge.models import BUILTIN_ARCHITECTURES, ModelSpec

WINDOW: Final = 60
CHANNELS: Final = 8
DEFAULT_MODEL: Final = "dense_ae"
RSS_TARGET_MB: Final = 400.0
MEASURING_BUDGET_MB: Final = 16_384.0


class TrainBenchmark:
    name = "train"
    help = "trainer child process: wall time and peak RSS of one local epoch (60 x 8 windows)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--windows", type=int, default=1000, help="training windows")
        parser.add_argument("--epochs", type=int, default=1)
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--threads", type=int, default=1, help="torch threads in the child")
        parser.add_argument("--repeats", type=int, default=3, help="runs per architecture")
        parser.add_argument(
            "--architecture",
            action="append",
            choices=BUILTIN_ARCHITECTURES,
            help="measure only this model (repeatable; default: all built-in models)",
        )

    def run(self, args: argparse.Namespace) -> dict[str, Any]:
        architectures: list[str] = args.architecture or [DEFAULT_MODEL, "conv_ae"]
        config = TrainingConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            threads=args.threads,
            memory_budget_mb=MEASURING_BUDGET_MB,
            time_budget_s=3600.0,
        )
        per_model = {
            a: trainer_figures(a, args.windows, config, args.repeats) for a in architectures
        }
        main = per_model[DEFAULT_MODEL if DEFAULT_MODEL in per_model else architectures[0]]
        return {
            "model": main["model"],
            "window": WINDOW,
            "channels": CHANNELS,
            "windows": args.windows,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "repeats": args.repeats,
            "trainer_wall_s": main["trainer_wall_s"],
            "trainer_train_s": main["trainer_train_s"],
            "trainer_peak_rss_mb": main["trainer_peak_rss_mb"],
            "trainer_peak_rss_target_mb": RSS_TARGET_MB,
            "trainer_peak_rss_within_target": all(
                f["trainer_peak_rss_mb"] <= RSS_TARGET_MB for f in per_model.values()
            ),
            "architectures": per_model,
            **node_figures(args),
        }


def trainer_figures(
    architecture: str, count: int, config: TrainingConfig, repeats: int
) -> dict[str, Any]:
    """Train ``architecture`` ``repeats`` times in a child process; wall, loop and peak RSS."""
    spec = ModelSpec(architecture, WINDOW, CHANNELS)
    job = TrainingJob(spec, _base_arrays(spec), _windows(count), config)
    walls, results = [], []
    for _ in range(max(1, repeats)):
        with tempfile.TemporaryDirectory(prefix="fedge-bench-train-") as workdir:
            run = start_training(job, Path(workdir))
            results.append(run.result())
            assert run.wall_s is not None  # noqa: S101 - set once result() returned
            walls.append(run.wall_s)
    last: TrainingResult = results[-1]
    return {
        "model": architecture,
        "parameters": int(sum(a.size for a in job.base.values())),
        "trainer_wall_s": round(statistics.median(walls), 3),
        "trainer_train_s": round(statistics.median(r.metrics.train_s for r in results), 3),
        "trainer_duration_s": round(statistics.median(r.metrics.duration_s for r in results), 3),
        "trainer_peak_rss_mb": max(r.metrics.peak_rss_mb for r in results),
        "batches": last.metrics.batches,
        "loss_before": round(last.metrics.loss_before, 6),
        "loss_after": round(last.metrics.loss_after, 6),
        "onnx_bytes": len(last.onnx),
    }


def node_figures(args: argparse.Namespace) -> dict[str, Any]:
    """Figures of the always-on node around training, merged into the results.

    To come with the drift trigger (``edge_node/trigger.py``), which lets a node start
    training on its own: ``node_rss_idle_mb`` and ``node_rss_training_mb`` (the node process
    while a trainer child runs; ``edge_node.trainer.memory.rss_mb(pid)`` reads it), and
    ``trigger_to_swap_s`` (drift detected to the fine-tuned model scoring). Measure them in a
    separate, torch-free node process as ``fedge bench ingest`` does: this process imports
    torch to make the base weights. Until then there is nothing to report.
    """
    return {}


def _base_arrays(spec: ModelSpec) -> dict[str, NDArray[np.float32]]:
    """Seeded initial weights; torch is imported here, in the benchmark, never in a node."""
    from fedge.models.networks import build_module, to_arrays  # noqa: PLC0415

    return to_arrays(build_module(spec, seed=0))


def _windows(count: int) -> NDArray[np.float32]:
    """Normalised windows of eight noisy phase-shifted sines, as a node would snapshot them."""
    rng = np.random.default_rng(0)
    t = np.arange(WINDOW)[None, :, None] + rng.integers(0, 10_000, (count, 1, 1))
    phase = np.arange(CHANNELS)[None, None, :]
    raw = np.sin(t / 13.0 + phase) + 0.05 * rng.standard_normal((count, WINDOW, CHANNELS))
    mean, std = raw.mean(axis=(0, 1)), raw.std(axis=(0, 1))
    normalised: NDArray[np.float32] = ((raw - mean) / std).astype(np.float32)
    return normalised


BENCHMARK = TrainBenchmark()
