"""`fedge bench train`: the benchmark runs the trainer child and names its figures plainly."""

from __future__ import annotations

import argparse

from edge_node.bench_train import BENCHMARK


def test_bench_train_reports_trainer_wall_time_and_peak_rss() -> None:
    """A one-model, one-run pass yields the plain trainer keys, top level and per model."""
    # Prepare
    parser = argparse.ArgumentParser()
    BENCHMARK.configure(parser)
    args = parser.parse_args(["--windows", "64", "--repeats", "1", "--architecture", "dense_ae"])

    # Execute
    figures = BENCHMARK.run(args)

    # Assert
    assert BENCHMARK.name == "train"
    assert figures["model"] == "dense_ae"
    assert figures["windows"] == 64
    per_model = figures["architectures"]["dense_ae"]
    for key in ("trainer_wall_s", "trainer_train_s", "trainer_peak_rss_mb"):
        assert figures[key] == per_model[key]
        assert per_model[key] > 0
    assert per_model["trainer_wall_s"] > per_model["trainer_train_s"]
    assert per_model["batches"] == 1
    assert isinstance(figures["trainer_peak_rss_within_target"], bool)
