"""`fedge bench train`: the benchmark runs the trainer child and names its figures plainly."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_node.bench_train import (
    BENCHMARK,
    DEVICE,
    IDLE_TOLERANCE_MB,
    NODE_WINDOW,
    SWAP_TARGET_S,
    NodeRun,
    child_pids,
    node_config,
    parent_pid,
    scenario_frames,
)
from fedge.wire import Event, Plain


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    BENCHMARK.configure(parser)
    return parser.parse_args(list(argv))


def _event(kind: str, at: float, **data: Plain) -> Event:
    return Event("bench-node", kind, at, f"e-{kind}", "pump-0", data)


def test_bench_train_reports_trainer_wall_time_and_peak_rss() -> None:
    """A one-model, one-run pass yields the plain trainer keys, top level and per model."""
    # Prepare
    args = _args("--windows", "64", "--repeats", "1", "--architecture", "dense_ae", "--skip-node")

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
    assert not any(key.startswith(("node_", "trigger_")) for key in figures)  # --skip-node


def test_node_run_names_the_node_figures_and_checks_the_targets() -> None:
    """Trigger, fine-tune and swap times, RSS before/while/after and the targets come out."""
    # Prepare
    run = NodeRun(
        rss_idle_before=80.04,
        rss_idle_after=82.0,
        rss_idle_after_trimmed=79.5,
        rss_peak=95.0,
        training_node_mb=[90.0, 94.96, 93.0],
        training_child_mb=[120.0, 250.0],
        events={
            "trigger": _event("trigger", 1000.0, statistic="level"),
            "finetune": _event("finetune", 1002.5, samples=1121.0, peak_rss_mb=251.0),
        },
        updates=1,
        swapped_at=1002.51,
    )

    # Execute
    figures = run.figures()

    # Assert
    assert figures["node_rss_idle_before_mb"] == 80.0
    assert figures["node_rss_training_mb"] == 95.0
    assert figures["node_rss_training_samples"] == 3
    assert figures["trainer_child_rss_mb"] == 250.0
    assert figures["trainer_child_peak_rss_mb"] == 251.0
    assert figures["node_rss_idle_delta_mb"] == 2.0
    assert figures["node_rss_idle_unchanged"] is True
    assert figures["node_rss_idle_after_trimmed_mb"] == 79.5
    assert figures["trigger_statistic"] == "level"
    assert figures["finetune_windows"] == 1121
    assert figures["trigger_to_finetune_event_s"] == 2.5
    assert figures["trigger_to_swap_s"] == 2.51
    assert figures["trigger_to_swap_target_s"] == SWAP_TARGET_S
    assert figures["trigger_to_swap_within_target"] is True
    assert figures["update_sent"] is True


def test_node_run_without_a_swap_reports_none_and_misses_the_targets() -> None:
    """No trigger or swap: times are None, not zero, and no target counts as met."""
    # Prepare
    run = NodeRun(rss_idle_before=80.0, rss_idle_after=80.0 + IDLE_TOLERANCE_MB + 1)

    # Execute
    figures = run.figures()

    # Assert
    assert figures["trigger_to_swap_s"] is None
    assert figures["trigger_to_finetune_event_s"] is None
    assert figures["trigger_to_swap_within_target"] is False
    assert figures["node_rss_training_mb"] is None
    assert figures["node_rss_idle_unchanged"] is False
    assert figures["update_sent"] is False


def test_parent_pid_survives_a_command_name_with_spaces_and_parentheses() -> None:
    """The parent pid is the field after the state, wherever the command name's ')' falls."""
    # Prepare
    stat = "4242 (python (x) -m y) S 17 4242 4242 0 -1 4194560 1 0 0 0"

    # Execute
    ppid = parent_pid(stat)

    # Assert
    assert ppid == 17


def test_child_pids_lists_the_processes_whose_parent_is_given(tmp_path: Path) -> None:
    """Entries of a /proc-like tree are children when their stat names the parent."""
    # Prepare
    for pid, ppid in ((10, 1), (11, 10), (12, 10), (13, 11)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (trainer) S {ppid} 0 0\n")
    (tmp_path / "self").mkdir()
    (tmp_path / "14").mkdir()  # exited between listing and reading: no stat

    # Execute
    children = sorted(child_pids(10, proc=tmp_path))

    # Assert
    assert children == [11, 12]


def test_scenario_feeds_the_node_its_pump_in_windows_of_30(tmp_path: Path) -> None:
    """The scenario's frames are one pump's six channels; the node runs default learning."""
    # Prepare
    seconds = 20.0

    # Execute
    frames = scenario_frames(seconds)
    config = node_config(tmp_path)

    # Assert
    assert sum(f.rows for f in frames) == 200
    assert {f.device for f in frames} == {DEVICE}
    assert config.channels == frames[0].channels
    assert config.engine.window.window == NODE_WINDOW
    assert config.learning is not None
