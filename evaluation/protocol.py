"""The evaluation protocol and its hyper-parameters, chosen once and kept as the defaults.

SKAB's outlier-detection protocol: in every run the first ``train_rows`` (400) readings are
normal and used for training and calibration; every later reading is test data. The edge
node's own pieces do the work, configured as below; the values were chosen once on the shared
SKAB folders (see docs/evaluation.md for how) and are never tuned per file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from edge_node.detector import DetectorConfig
from edge_node.engine import EngineConfig
from edge_node.learning import LearningConfig
from edge_node.trainer.job import TrainingConfig
from edge_node.trigger import TriggerConfig
from edge_node.windows import WindowConfig
from fedge.errors import ConfigError
from fedge.models import ModelSpec
from fedge.wire import Plain

MODES: Final = ("local", "federated", "centralized")
MODEL: Final = "skab"


@dataclass(frozen=True)
class EvalConfig:
    """Everything that decides a result; ``describe`` puts it into the JSON output."""

    train_rows: int = 400
    architecture: str = "conv_ae"
    window: int = 30
    rounds: int = 5
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    strategy: str = "fedavg"
    seed: int = 0
    detector: DetectorConfig = field(default_factory=DetectorConfig)  # the node's defaults
    frame_rows: int = 20  # readings per replayed frame; must divide train_rows
    max_gap_s: float = 5.0

    def __post_init__(self) -> None:
        if self.train_rows < self.window or self.train_rows % self.frame_rows:
            raise ConfigError(
                "evaluate.train_rows",
                f"{self.train_rows} must be >= window {self.window} and a multiple of "
                f"frame_rows {self.frame_rows}",
            )
        if self.rounds < 1:
            raise ConfigError("--rounds", f"{self.rounds} must be >= 1")
        if self.epochs < 1:
            raise ConfigError("evaluate.epochs", f"{self.epochs} must be >= 1")

    def spec_for(self, channels: int) -> ModelSpec:
        return ModelSpec(self.architecture, self.window, channels)

    def engine(self, calibration_windows: int) -> EngineConfig:
        """The node's inference config; ``calibration_windows``: the windows of its
        training part, so normalisation and threshold come from exactly those readings."""
        return EngineConfig(
            window=WindowConfig(window=self.window, max_gap_s=self.max_gap_s),
            detector=self.detector,
            calibration_windows=calibration_windows,
            max_calibration_set=100_000,
        )

    def training(self) -> TrainingConfig:
        """The node's own training limits (a round's command brings epochs and lr)."""
        return TrainingConfig(batch_size=self.batch_size, time_budget_s=3600.0)

    def learning(self) -> LearningConfig:
        """Rounds only (no drift fine-tuning: the model must stay what the rounds made), every
        calibration window kept as training data."""
        return LearningConfig(
            trigger=TriggerConfig(enabled=False),
            training=self.training(),
            store_keep_every=1,
            train_windows=100_000,
            min_train_windows=1,
            timeout_s=3600.0,
        )

    def round_params(self) -> dict[str, Plain]:
        """What the aggregator's train command carries (see ``round_training``)."""
        return {"epochs": self.epochs, "lr": self.lr}

    def describe(self) -> dict[str, Plain]:
        detector = self.detector
        return {
            "train_rows": self.train_rows,
            "architecture": self.architecture,
            "window": self.window,
            "rounds": self.rounds,
            "epochs_per_round": self.epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "strategy": self.strategy,
            "seed": self.seed,
            "threshold": (
                f"quantile {detector.quantile} of the calibration scores x (1 + {detector.margin})"
            ),
            "min_windows": detector.min_windows,
            "clear_windows": detector.clear_windows,
            "exit_ratio": detector.exit_ratio,
        }
