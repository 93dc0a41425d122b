"""``python -m edge_node.trainer JOB_DIR [--parent-pid PID]``: the trainer child process.

Reads and validates the job before importing torch (a bad job fails in a fraction of a second),
applies the job's thread count and CPU priority, imports torch, trains, writes the result and
exits with a ``TrainerExit`` code. Every failure ends with one line on stderr saying why; an
unexpected exception also prints its traceback. The runner keeps stderr in ``trainer.log``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from edge_node.trainer.budget import Budget, TrainingAbortedError
from edge_node.trainer.files import read_job, write_result
from edge_node.trainer.job import JobError, TrainerExit, TrainingConfig
from fedge.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(prog="python -m edge_node.trainer")
    parser.add_argument("job_dir", type=Path, help="directory written by write_job")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    args = parser.parse_args(argv)
    try:
        job = read_job(args.job_dir)
    except JobError as exc:
        return _fail(TrainerExit.INVALID_JOB, f"invalid job: {exc}")
    _limit_cpu(job.config)
    budget = Budget(job.config, args.parent_pid)
    try:
        # torch comes in here, once the job is known to be valid; its import counts in the run.
        from edge_node.trainer.train import train  # noqa: PLC0415

        budget.check("importing torch")
        result = train(job, budget=budget, started=started, report=_say)
        write_result(args.job_dir, result)
    except TrainingAbortedError as exc:
        return _fail(exc.exit_code, str(exc))
    except ConfigError as exc:  # the spec or the weights do not build a network
        return _fail(TrainerExit.INVALID_JOB, f"invalid job: {exc}")
    except ImportError as exc:
        return _fail(
            TrainerExit.CRASHED, f"cannot import torch (pip install 'fedge[train]'): {exc}"
        )
    except Exception as exc:  # noqa: BLE001 - user models and torch raise anything; report it
        traceback.print_exc()
        return _fail(TrainerExit.CRASHED, f"crashed: {type(exc).__name__}: {exc}")
    m = result.metrics
    _say(
        f"done: loss {m.loss_before:.6g} -> {m.loss_after:.6g}, {m.samples} windows, "
        f"{m.batches} batches in {m.train_s:.2f} s, peak RSS {m.peak_rss_mb:.0f} MB"
    )
    return TrainerExit.OK


def _limit_cpu(config: TrainingConfig) -> None:
    """Thread pools sized before torch starts them; a lower priority than the node's."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(config.threads)
    if config.nice and hasattr(os, "nice"):
        os.nice(config.nice)


def _fail(code: TrainerExit, line: str) -> int:
    _say(line)
    return code


def _say(line: str) -> None:
    sys.stderr.write(f"trainer: {line}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and fsynced; skipping the interpreter's teardown of torch saves a
    # quarter of a second, which the node would otherwise wait for.
    os._exit(exit_code)
