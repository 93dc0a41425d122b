"""Start the trainer child, watch it, collect its result. Torch-free: the node imports this.

``start_training`` writes the job into a work directory and launches
``python -m edge_node.trainer WORKDIR`` in a session (process group) of its own, its stdout and
stderr going to ``trainer.log`` there. It returns a ``TrainingRun`` the node can poll while it
keeps scoring; ``run_training`` is the blocking form. Every way a run can go wrong ends in
``TrainingFailedError`` with a ``kind`` to count by and a ``reason`` to log, and touches nothing
the node is running. A timeout or a cancel kills the whole group; when a run ends for any
reason, whatever is left in its group is killed too, so no trainer process outlives its run.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from edge_node.trainer.files import LOG_FILE, read_result, write_job
from edge_node.trainer.job import JobError, TrainerExit, TrainingJob, TrainingResult
from fedge.errors import FedgeError

DEFAULT_TIMEOUT_MARGIN_S: Final = 120.0  # torch import, evaluation and export, on a slow device
POLL_S: Final = 0.05
LOG_TAIL_BYTES: Final = 8192
LOG_TAIL_LINES: Final = 6


class TrainingFailedError(FedgeError):
    """A training run produced no usable result; the node keeps scoring with its old model.

    ``kind`` is one of ``KINDS``; ``reason`` says what happened, with the last lines of the
    trainer's log when the trainer itself failed.
    """

    KINDS: Final = (
        "start_failed",  # the job could not be written or the process not started
        "timeout",  # killed after ``timeout_s``
        "cancelled",  # killed by ``TrainingRun.cancel``
        "memory",  # the trainer's peak RSS went over ``memory_budget_mb``
        "invalid_job",  # the trainer refused the job (files, spec, weights)
        "crashed",  # any other non-zero exit or a signal
        "invalid_result",  # exit 0 but the result files are missing or invalid
    )

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"training failed ({kind}): {reason}")
        self.kind = kind
        self.reason = reason


class TrainingRun:
    """One trainer child process, from launch to result. Safe to use from several threads."""

    def __init__(
        self,
        job: TrainingJob,
        workdir: Path,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.job = job
        self.workdir = workdir
        self.timeout_s = (
            job.config.time_budget_s + DEFAULT_TIMEOUT_MARGIN_S if timeout_s is None else timeout_s
        )
        self.wall_s: float | None = None  # launch to end, once the run has ended
        self._lock = threading.Lock()
        self._cancelled = False
        self._outcome: TrainingResult | TrainingFailedError | None = None
        command = [sys.executable, "-m", "edge_node.trainer", str(workdir)]
        command += ["--parent-pid", str(os.getpid())]
        try:
            write_job(workdir, job)
            self._log: IO[bytes] = (workdir / LOG_FILE).open("wb")
        except OSError as exc:
            raise TrainingFailedError("start_failed", f"cannot write the job: {exc}") from None
        self._started = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # its own process group: killed as one
            )
        except OSError as exc:
            self._log.close()
            raise TrainingFailedError("start_failed", f"cannot start the trainer: {exc}") from None
        self._exit_fd = _exit_fd(self._proc.pid)

    @property
    def pid(self) -> int:
        """The trainer's process id, which is also its process group id."""
        return self._proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / LOG_FILE

    def poll(self) -> bool:
        """True once the run has ended (result or failure); kills it when its time is up."""
        with self._lock:
            return self._advance()

    def result(self) -> TrainingResult:
        """Wait for the run to end; its result, or ``TrainingFailedError``."""
        while not self.poll():
            if self._exit_fd is None:
                time.sleep(POLL_S)
            else:  # wakes the moment the trainer exits
                waiter = select.poll()
                waiter.register(self._exit_fd, select.POLLIN)
                waiter.poll(POLL_S * 1000)
        if isinstance(self._outcome, TrainingFailedError):
            raise self._outcome
        assert self._outcome is not None  # noqa: S101 - poll() returned True: it is set
        return self._outcome

    def cancel(self) -> None:
        """Kill the trainer if it is still running; ``result()`` then raises ``cancelled``."""
        with self._lock:
            if self._outcome is None:
                self._cancelled = True
                self._advance()

    def __enter__(self) -> TrainingRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()

    # -- with the lock held ----------------------------------------------------------------------

    def _advance(self) -> bool:
        if self._outcome is not None:
            return True
        if self._exited():
            self._finish(None)
        elif self._cancelled:
            self._finish(("cancelled", "cancelled by the node"))
        elif time.monotonic() - self._started >= self.timeout_s:
            self._finish(("timeout", f"still running after {self.timeout_s:g} s: killed"))
        else:
            return False
        return True

    def _exited(self) -> bool:
        """Whether the trainer has exited, without reaping it (its group id stays reserved)."""
        if not hasattr(os, "waitid"):  # macOS before Python 3.13: reap now, clear the group after
            return self._proc.poll() is not None
        try:
            flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
            return os.waitid(os.P_PID, self._proc.pid, flags) is not None
        except ChildProcessError:
            return True

    def _finish(self, failure: tuple[str, str] | None) -> None:
        _kill_group(self._proc.pid)  # the trainer if killed, else anything it left behind
        code = self._proc.wait()
        self._log.close()
        if self._exit_fd is not None:
            os.close(self._exit_fd)
            self._exit_fd = None
        self.wall_s = time.monotonic() - self._started
        if failure is not None:
            self._outcome = TrainingFailedError(*failure)
        elif code != TrainerExit.OK:
            self._outcome = self._failure(code)
        else:
            try:
                self._outcome = read_result(self.workdir, self.job.base)
            except JobError as exc:
                self._outcome = TrainingFailedError("invalid_result", str(exc))

    def _failure(self, code: int) -> TrainingFailedError:
        lines = _log_tail(self.log_path)
        said = [line.removeprefix("trainer: ") for line in lines if line.startswith("trainer: ")]
        if code == TrainerExit.INVALID_JOB:
            return TrainingFailedError("invalid_job", said[-1] if said else "refused the job")
        if code == TrainerExit.MEMORY:
            return TrainingFailedError("memory", said[-1] if said else "over its memory budget")
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            hint = " (the kernel's out-of-memory killer?)" if -code == signal.SIGKILL else ""
            cause = f"killed by {name}{hint}"
        else:
            cause = f"exit code {code}"
        tail = " | ".join(lines[-LOG_TAIL_LINES:]) or "no output"
        return TrainingFailedError("crashed", f"{cause}: {tail}")


def start_training(
    job: TrainingJob,
    workdir: Path,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
) -> TrainingRun:
    """Launch a trainer for ``job`` in ``workdir`` and return at once.

    ``timeout_s`` (default: the job's time budget + 120 s) bounds the whole run, torch import
    and export included. ``env`` adds environment variables for the child, for example a
    ``PYTHONPATH`` under which a user model's package can be imported.
    """
    return TrainingRun(job, workdir, timeout_s, env)


def run_training(
    job: TrainingJob,
    workdir: Path,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
) -> TrainingResult:
    """Train ``job`` in a child process and wait for it; ``TrainingFailedError`` on failure."""
    with start_training(job, workdir, timeout_s, env) as run:
        return run.result()


def _exit_fd(pid: int) -> int | None:
    """A pidfd that becomes readable when ``pid`` exits (Linux 5.3+), or None."""
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:  # an older kernel, or a sandbox that forbids it: poll instead
        return None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is empty
        os.killpg(pgid, signal.SIGKILL)


def _log_tail(path: Path) -> list[str]:
    """The last non-empty lines of the trainer's log (its last 8 KB)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
            text = fh.read().decode(errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]
