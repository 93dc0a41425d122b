"""The three modes in one process: the edge node's training and detection, the aggregator's
strategy and version step, without the broker in between. Imports torch (it trains).

Each node's round is what ``LocalLearner`` does on a ``train`` command: train the base version
on the stored windows (here: its calibration windows, which a node keeps as training data)
with ``round_training``'s config, send the delta as a ``ModelUpdate``. The aggregator's part is
``Contribution.from_update``, the strategy's accumulator and ``versions.next_version``, as in
the service. Traffic is the size of the messages each side would have published, encoded by
the wire codec: the same bytes the live run measures on the broker.

- ``federated``: every node trains every round from the shared version.
- ``local``: every node runs the same rounds alone (the strategy over its own update only).
- ``centralized``: one node holding every run's (per-run normalised) training windows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator import artifacts, versions
from cloud_aggregator.strategies.base import Contribution
from cloud_aggregator.strategies.catalog import make_strategy
from edge_node.learning import round_training, update_from
from edge_node.trainer.job import TrainingJob, TrainingResult
from edge_node.trainer.train import train
from evaluation.metrics import Confusion, pooled
from evaluation.nodes import Detection, NodeData, detect
from evaluation.protocol import MODEL, EvalConfig
from fedge.wire import Command, GlobalModel, ModelUpdate, encode

Progress = Callable[[str], None]


@dataclass
class Traffic:
    """Payload bytes per node per round, and what the raw readings would have cost."""

    sent: dict[str, list[int]] = field(default_factory=dict)  # updates, node -> round
    received: dict[str, list[int]] = field(default_factory=dict)  # command + global model
    final_model: int = 0  # the last version, which every node downloads once more
    raw_bytes: dict[str, int] = field(default_factory=dict)  # every reading, float32
    frame_bytes: dict[str, int] = field(default_factory=dict)  # the encoded sensor frames

    def add(self, node: str, round_index: int, sent: int, received: int) -> None:
        for table, value in ((self.sent, sent), (self.received, received)):
            row = table.setdefault(node, [])
            row.extend([0] * (round_index + 1 - len(row)))
            row[round_index] += value

    @property
    def total_sent(self) -> int:
        return sum(sum(row) for row in self.sent.values())

    @property
    def total_received(self) -> int:
        return sum(sum(row) for row in self.received.values()) + self.final_model * len(
            self.received
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "sent_per_node_per_round": self.sent,
            "received_per_node_per_round": self.received,
            "final_model_bytes_per_node": self.final_model,
            "total_sent": self.total_sent,
            "total_received": self.total_received,
            "total": self.total_sent + self.total_received,
            "raw_readings_bytes": sum(self.raw_bytes.values()),
            "sensor_frame_bytes": sum(self.frame_bytes.values()),
        }


@dataclass
class RoundRecord:
    """One round: the losses each node's trainer measured, and the pooled F1 afterwards."""

    index: int
    loss_before: dict[str, float]
    loss_after: dict[str, float]
    f1: float


@dataclass
class ModeResult:
    mode: str
    detections: dict[str, Detection]
    rounds: list[RoundRecord]
    traffic: Traffic
    seconds: float
    live: bool = False

    @property
    def overall(self) -> Confusion:
        return pooled(d.confusion for d in self.detections.values())


def run_mode(
    mode: str, nodes: Sequence[NodeData], config: EvalConfig, progress: Progress
) -> ModeResult:
    started = time.monotonic()
    if mode == "federated":
        result = _rounds(mode, [list(nodes)], config, progress)
    elif mode == "local":
        result = _rounds(mode, [[n] for n in nodes], config, progress)
    elif mode == "centralized":
        result = _centralized(nodes, config, progress)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _rounds(
    mode: str, groups: list[list[NodeData]], config: EvalConfig, progress: Progress
) -> ModeResult:
    """``config.rounds`` rounds for every group of nodes sharing one model."""
    spec = config.spec_for(len(groups[0][0].channels))
    arrays, onnx = artifacts.bootstrap(spec, config.seed)
    start = GlobalModel(MODEL, 0, arrays, onnx, spec.to_plain(), created_at=0.0)
    models = [start] * len(groups)
    strategies = [make_strategy(config.strategy) for _ in groups]
    traffic = Traffic()
    records: list[RoundRecord] = []
    for index in range(config.rounds):
        before: dict[str, float] = {}
        after: dict[str, float] = {}
        for g, group in enumerate(groups):
            base = models[g]
            accumulator = strategies[g].accumulator()
            for node in group:
                result = train_round(base, node.calibration, config)
                update = update_of(node.node, base, result, index + 1)
                if mode == "federated":  # local nodes never talk to anyone
                    command = command_of(node.node, base, index + 1, config)
                    traffic.add(
                        node.node,
                        index,
                        len(encode(update)),
                        len(encode(command)) + len(encode(base)),
                    )
                accumulator.fold(Contribution.from_update(update))
                before[node.node] = result.metrics.loss_before
                after[node.node] = result.metrics.loss_after
            models[g] = versions.next_version(
                strategies[g], base, accumulator.result(), {}, now=float(index + 1)
            )
        detections = {
            n.node: detect(n, models[g].onnx, config.detector, config.train_rows)
            for g, group in enumerate(groups)
            for n in group
        }
        f1 = pooled(d.confusion for d in detections.values()).f1
        records.append(RoundRecord(index + 1, before, after, f1))
        progress(f"{mode}: round {index + 1}/{config.rounds}, F1 {f1:.3f}")
    if mode == "federated":
        traffic.final_model = len(encode(models[0]))
    raw_cost(traffic, [n for group in groups for n in group])
    return ModeResult(mode, detections, records, traffic, 0.0)


def _centralized(nodes: Sequence[NodeData], config: EvalConfig, progress: Progress) -> ModeResult:
    """One model on every run's training windows pooled; each node keeps its own threshold.
    Its traffic is the raw training readings every node would ship to the cloud."""
    spec = config.spec_for(len(nodes[0].channels))
    arrays, onnx = artifacts.bootstrap(spec, config.seed)
    model = GlobalModel(MODEL, 0, arrays, onnx, spec.to_plain(), created_at=0.0)
    strategy = make_strategy(config.strategy)
    windows = np.concatenate([n.calibration for n in nodes])
    records: list[RoundRecord] = []
    detections: dict[str, Detection] = {}
    for index in range(config.rounds):
        result = train_round(model, windows, config)
        accumulator = strategy.accumulator()
        accumulator.fold(Contribution.from_update(update_of("central", model, result, index + 1)))
        model = versions.next_version(strategy, model, accumulator.result(), {}, float(index + 1))
        detections = {
            n.node: detect(n, model.onnx, config.detector, config.train_rows) for n in nodes
        }
        f1 = pooled(d.confusion for d in detections.values()).f1
        loss = {"central": result.metrics.loss_before}, {"central": result.metrics.loss_after}
        records.append(RoundRecord(index + 1, loss[0], loss[1], f1))
        progress(f"centralized: round {index + 1}/{config.rounds}, F1 {f1:.3f}")
    traffic = Traffic()
    for node in nodes:
        shipped = node.frames[: node.train_frames]
        traffic.add(node.node, 0, sum(len(encode(f)) for f in shipped), len(encode(model)))
    raw_cost(traffic, nodes)
    return ModeResult("centralized", detections, records, traffic, 0.0)


def train_round(
    base: GlobalModel, windows: NDArray[np.float32], config: EvalConfig
) -> TrainingResult:
    """A node's round, trained here instead of in the trainer child (the same ``train``).
    The memory budget is the child's; this process holds every node, so it is lifted."""
    job_config = round_training(config.round_params(), config.training())
    spec = config.spec_for(windows.shape[2])
    job = TrainingJob(
        spec, base.arrays, windows, replace(job_config, memory_budget_mb=10_000_000.0)
    )
    return train(job)


def update_of(node: str, base: GlobalModel, result: TrainingResult, round_id: int) -> ModelUpdate:
    """The update ``LocalLearner`` would send (ids and times fixed, so runs repeat)."""
    return update_from(
        node,
        base.model,
        base.version,
        base.arrays,
        result,
        round_id=round_id,
        update_id=f"{node}-r{round_id}",
        created_at=0.0,
    )


def command_of(node: str, base: GlobalModel, round_id: int, config: EvalConfig) -> Command:
    """The aggregator's train command for this round (for its size)."""
    params = {"round_id": round_id, "base_version": base.version, **config.round_params()}
    return Command(node, "train", f"round-{round_id}", 0.0, params, 0.0)


def raw_cost(traffic: Traffic, nodes: Iterable[NodeData]) -> None:
    """What the nodes' readings weigh: as float32, and as the sensor frames that carried them."""
    for node in nodes:
        recording = node.experiment.recording
        traffic.raw_bytes[node.node] = int(recording.values.nbytes)
        traffic.frame_bytes[node.node] = sum(len(encode(f)) for f in node.frames)
