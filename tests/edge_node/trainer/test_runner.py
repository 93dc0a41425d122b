"""The trainer child process as the node sees it: results, failures, timeouts, no torch here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from edge_node.trainer import (
    TrainerExit,
    TrainingConfig,
    TrainingFailedError,
    TrainingJob,
    run_training,
    start_training,
    write_job,
)
from edge_node.trainer.files import WINDOWS_FILE
from fedge.models import ModelSpec
from tests.edge_node.trainer.support import ROOT, child_env, job, windows

USER_MODELS = "tests.edge_node.trainer.user_models"


def _gone(pid: int, *, group: bool, within_s: float = 10.0) -> bool:
    """Whether process (or process group) ``pid`` disappears within ``within_s``.

    Killed grandchildren linger as zombies until init reaps them, hence the wait.
    """
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            (os.killpg if group else os.kill)(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def test_a_node_process_trains_through_the_child_without_importing_torch(tmp_path: Path) -> None:
    """A fresh interpreter runs a job through the runner: a better model, and no torch in it."""
    # Prepare
    write_job(tmp_path / "prepared", job("dense_ae", 256, TrainingConfig(epochs=2, lr=1e-2)))
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from pathlib import Path
        from edge_node.trainer.files import read_job
        from edge_node.trainer.runner import start_training
        from edge_node.trainer.job import TrainingJob
        from edge_node.trainer import budget, memory
        job = read_job(Path({str(tmp_path / "prepared")!r}))
        run = start_training(job, Path({str(tmp_path / "work")!r}))
        polls = 0
        while not run.poll():
            polls += 1
            time.sleep(0.01)
        result = run.result()
        print(json.dumps({{
            "metrics": result.metrics.to_plain(),
            "onnx_bytes": len(result.onnx),
            "polls": polls,
            "wall_s": run.wall_s,
            "torch": sorted(m for m in sys.modules if m.startswith("torch")),
        }}))
        """
    )

    # Execute
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )

    # Assert
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["torch"] == []
    assert report["metrics"]["loss_after"] < report["metrics"]["loss_before"]
    assert report["metrics"]["batches"] == 8
    assert report["onnx_bytes"] > 0
    assert report["polls"] > 0  # poll() returned at once while the child was training
    assert report["wall_s"] > report["metrics"]["duration_s"] > 0
    assert "trainer: done" in (tmp_path / "work" / "trainer.log").read_text()


def test_going_over_the_memory_budget_fails_the_run(tmp_path: Path) -> None:
    """A budget below torch's own footprint: TrainingFailedError of kind 'memory'."""
    task = job("dense_ae", 64, TrainingConfig(memory_budget_mb=60.0))

    with pytest.raises(TrainingFailedError) as info:
        run_training(task, tmp_path)

    assert info.value.kind == "memory"
    assert "memory budget exceeded" in info.value.reason
    assert "60 MB" in info.value.reason


def test_weights_that_do_not_fit_the_network_are_an_invalid_job(tmp_path: Path) -> None:
    """Base arrays named for another network: the child refuses the job, the run fails."""
    task = job("dense_ae", 64)
    wrong = TrainingJob(task.spec, {"other.weight": np.zeros(3, np.float32)}, task.windows)

    with pytest.raises(TrainingFailedError) as info:
        run_training(wrong, tmp_path)

    assert info.value.kind == "invalid_job"
    assert "other.weight" in info.value.reason


def test_a_corrupt_job_directory_is_refused_before_torch_is_imported(tmp_path: Path) -> None:
    """The child exits with INVALID_JOB and says which file is wrong."""
    # Prepare
    write_job(tmp_path, job("dense_ae", 16))
    (tmp_path / WINDOWS_FILE).write_bytes(b"not an array")

    # Execute
    done = subprocess.run(
        [sys.executable, "-m", "edge_node.trainer", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Assert
    assert done.returncode == TrainerExit.INVALID_JOB
    assert WINDOWS_FILE in done.stderr
    assert "invalid job" in done.stderr


def test_a_crashing_model_is_reported_with_the_end_of_its_traceback(tmp_path: Path) -> None:
    """A user model that raises: kind 'crashed', the exception in the reason."""
    model = ModelSpec(f"{USER_MODELS}:Exploding", 16, 3)
    task = TrainingJob(model, {"scale": np.ones(3, np.float32)}, windows(8))

    with pytest.raises(TrainingFailedError) as info:
        run_training(task, tmp_path, env=child_env())

    assert info.value.kind == "crashed"
    assert "exit code 1" in info.value.reason
    assert "boom: this model cannot run" in info.value.reason


def test_an_exit_without_a_result_is_an_invalid_result(tmp_path: Path) -> None:
    """A user model that ends the process with status 0: kind 'invalid_result'."""
    model = ModelSpec(f"{USER_MODELS}:Quitter", 16, 3)
    task = TrainingJob(model, {"w": np.zeros(1, np.float32)}, windows(8))

    with pytest.raises(TrainingFailedError) as info:
        run_training(task, tmp_path, env=child_env())

    assert info.value.kind == "invalid_result"
    assert "result.json" in info.value.reason


def test_a_trainer_past_its_timeout_is_killed(tmp_path: Path) -> None:
    """Too short a timeout: the child is killed, nothing of it remains, kind 'timeout'."""
    # Prepare
    task = job("dense_ae", 256, TrainingConfig(epochs=1000, time_budget_s=600))  # minutes
    run = start_training(task, tmp_path, timeout_s=0.5)

    # Execute
    with pytest.raises(TrainingFailedError) as info:
        run.result()

    # Assert
    assert info.value.kind == "timeout"
    assert run.wall_s is not None
    assert run.wall_s < 5
    assert _gone(run.pid, group=True)


def test_cancel_kills_the_trainer_and_everything_it_started(tmp_path: Path) -> None:
    """A trainer that spawned a process and hangs: cancel leaves neither behind."""
    # Prepare
    pid_file = tmp_path / "grandchild.pid"
    model = ModelSpec(f"{USER_MODELS}:Sleeper", 16, 3, {"pid_file": str(pid_file)})
    task = TrainingJob(model, {"w": np.zeros(1, np.float32)}, windows(8))
    run = start_training(task, tmp_path / "work", timeout_s=60, env=child_env())
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline and not run.poll():
        time.sleep(0.05)
    assert pid_file.exists(), (tmp_path / "work" / "trainer.log").read_text()
    grandchild = int(pid_file.read_text())

    # Execute
    run.cancel()

    # Assert
    with pytest.raises(TrainingFailedError) as info:
        run.result()
    assert info.value.kind == "cancelled"
    assert _gone(grandchild, group=False)
    assert _gone(run.pid, group=True)
