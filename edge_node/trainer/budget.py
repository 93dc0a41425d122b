"""The limits a trainer runs within, and the errors that end a run early. Torch-free.

``Budget`` is checked by the training loop before every batch and after every phase: the peak
resident memory (VmHWM, torch included) must stay within ``memory_budget_mb``, and the node that
started the trainer must still be alive. The time budget bounds the optimisation loop only and
ends it early without failing the run.
"""

from __future__ import annotations

import math
import os
import time

from edge_node.trainer.job import TrainerExit, TrainingConfig
from edge_node.trainer.memory import peak_rss_mb
from fedge.errors import FedgeError


class TrainingAbortedError(FedgeError):
    """A run the trainer gave up on; ``exit_code`` is what the child process exits with."""

    exit_code: TrainerExit = TrainerExit.CRASHED


class MemoryBudgetError(TrainingAbortedError):
    """The trainer's peak resident memory went over its budget."""

    exit_code = TrainerExit.MEMORY

    def __init__(self, peak_mb: float, budget_mb: float, phase: str) -> None:
        super().__init__(
            f"memory budget exceeded while {phase}: peak RSS {peak_mb:.0f} MB > "
            f"{budget_mb:.0f} MB (raise memory_budget_mb or train on fewer windows)"
        )
        self.peak_mb, self.budget_mb, self.phase = peak_mb, budget_mb, phase


class OrphanedError(TrainingAbortedError):
    """The node that started this trainer has exited; nobody will read the result."""

    exit_code = TrainerExit.ORPHANED


class DivergedError(TrainingAbortedError):
    """The loss became NaN or infinite; the weights are unusable."""


class Budget:
    """The trainer's limits: peak memory and a living parent always, time for the loop only."""

    def __init__(self, config: TrainingConfig, parent_pid: int | None = None) -> None:
        self.memory_mb = config.memory_budget_mb
        self.time_s = config.time_budget_s
        self.parent_pid = parent_pid
        self._deadline = math.inf

    def check(self, phase: str) -> None:
        """Raise if the peak RSS is over budget or the parent process is gone."""
        peak = peak_rss_mb()
        if peak > self.memory_mb:
            raise MemoryBudgetError(peak, self.memory_mb, phase)
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            raise OrphanedError(f"parent process {self.parent_pid} is gone while {phase}")

    def start_clock(self) -> None:
        """Start the time budget (at the first batch)."""
        self._deadline = time.monotonic() + self.time_s

    def time_spent(self) -> bool:
        return time.monotonic() >= self._deadline
