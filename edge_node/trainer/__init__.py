"""Local training in a child process: the node hands over a job, gets weights and ONNX back.

The node imports only the torch-free modules here (``job``, ``files``, ``runner``,
``memory``); ``train`` imports torch and runs only inside ``python -m edge_node.trainer``.
See docs/training.md for the contract.
"""

from edge_node.trainer.files import read_job, read_result, write_job, write_result
from edge_node.trainer.job import (
    JobError,
    TrainerExit,
    TrainingConfig,
    TrainingJob,
    TrainingMetrics,
    TrainingResult,
)
from edge_node.trainer.runner import (
    TrainingFailedError,
    TrainingRun,
    run_training,
    start_training,
)

__all__ = [
    "JobError",
    "TrainerExit",
    "TrainingConfig",
    "TrainingFailedError",
    "TrainingJob",
    "TrainingMetrics",
    "TrainingResult",
    "TrainingRun",
    "read_job",
    "read_result",
    "run_training",
    "start_training",
    "write_job",
    "write_result",
]
