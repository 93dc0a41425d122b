"""Local learning on the edge node: drift-triggered fine-tuning and aggregator training rounds.

``LocalLearner`` watches the engine (raw readings for the drift trigger, scored windows for
the window store), and runs training jobs one at a time on a worker thread so that scoring
never waits. Training itself happens in a child process (``edge_node.trainer``); this module,
like the rest of the always-on node, never imports torch.

When the trigger fires: publish a ``trigger`` event saying why; take the windows recorded
since the deviation began (short anomaly episodes excluded), renormalise the drifted device to
its recent statistics, fine-tune the current model on them, calibrate a new threshold on a
held-out part, swap the model in (with the new normalisation), re-baseline the trigger, and
send the update (the delta from the node's global base version) through the outbox.

A ``train`` command from the aggregator trains the global base version on recent normal
windows with the round's hyper-parameters and sends the update with the round id. A command
that is late, superseded or for another base version is refused with a reason.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.random import default_rng  # imported at start-up, not on the first fine-tune
from numpy.typing import NDArray

from edge_node.detector import calibrate_threshold
from edge_node.engine import ActiveModel, InferenceEngine
from edge_node.outbox import Outbox, OutboxSender
from edge_node.scorer import ModelRejectedError, WindowScorer
from edge_node.state import NodeStore, Normalisation, StoredModel
from edge_node.trainer.job import TrainingConfig, TrainingJob, TrainingResult
from edge_node.trainer.runner import TrainingFailedError, run_training
from edge_node.trigger import DriftTrigger, Firing, TriggerConfig
from edge_node.window_store import WindowStore
from edge_node.windows import WindowBlock
from fedge.models import ModelSpec
from fedge.wire import Command, ModelUpdate, Plain, SensorFrame

log = logging.getLogger(__name__)

EventSink = Callable[[str, str | None, dict[str, Plain]], None]


@dataclass(frozen=True)
class LearningConfig:
    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    training: TrainingConfig = field(default_factory=lambda: TrainingConfig(epochs=10))
    store_max_windows: int = 20_000
    store_max_age_s: float = 7 * 86_400.0
    store_keep_every: int = 2
    train_windows: int = 2_000
    min_train_windows: int = 50
    holdout_fraction: float = 0.25
    timeout_s: float = 300.0
    check_every_s: float = 5.0
    outbox_entries: int = 100


BASE_WAIT_S = 10.0  # how long a train command waits for the global version it names


@dataclass(frozen=True)
class BaseModel:
    """The global version local learning starts from, and deltas are measured against."""

    model: str
    version: int
    spec: ModelSpec
    arrays: Mapping[str, NDArray[np.float32]]


@dataclass
class LearningStats:
    firings: int = 0
    finetunes: int = 0
    rounds: int = 0
    failures: int = 0
    refused_commands: int = 0


def release_free_memory() -> None:
    """Hand memory freed by a training job back to the OS (glibc keeps it otherwise).

    A fine-tune allocates and frees several MB on the node (window snapshot, job files,
    renormalised copies); without this the idle node would stay ~10 MB larger afterwards.
    Best effort: a no-op where glibc's ``malloc_trim`` does not exist.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class LocalLearner:
    """Glue between the engine, the trigger, the trainer and the outbox."""

    def __init__(
        self,
        node: str,
        engine: InferenceEngine,
        store: NodeStore,
        updates_topic: str,
        publish_event: EventSink,
        *,
        config: LearningConfig,
    ) -> None:
        self.node = node
        self.engine = engine
        self.store = store
        self.config = config
        self.stats = LearningStats()
        self._event = publish_event
        self._updates_topic = updates_topic
        w, c = engine.config.window.window, len(engine.channels)
        self.windows = WindowStore(
            store.directory / "windows",
            config.store_max_windows,
            config.store_max_age_s,
            window=w,
            channels=c,
            keep_every=config.store_keep_every,
        )
        self.outbox = Outbox(store.directory / "outbox.sqlite", config.outbox_entries)
        self.sender: OutboxSender | None = None
        self.trigger = DriftTrigger(engine.channels, config.trigger)
        self.base: BaseModel | None = None
        self.current: Mapping[str, NDArray[np.float32]] | None = None
        self._episodes: dict[str, list[tuple[float, float]]] = {}
        self._next_check: dict[str, float] = {}
        self._jobs: queue.Queue[Firing | Command | None] = queue.Queue()
        self._busy = threading.Event()
        self._last_round = -1
        self._has_data = len(self.windows) >= config.min_train_windows
        self.on_trainable: Callable[[], None] | None = None  # called once enough windows are in
        self._worker = threading.Thread(target=self._work, name=f"{node}-learner", daemon=True)
        engine.on_frame = self._on_frame
        engine.on_block = self._on_block
        engine.on_calibration_windows = self._on_calibration_windows

    def start(self, sender: OutboxSender) -> None:
        self.sender = sender
        self._worker.start()

    def stop(self) -> None:
        self._jobs.put(None)
        self._worker.join(self.config.timeout_s + 10)
        self.windows.close()

    @property
    def busy(self) -> bool:
        return self._busy.is_set() or not self._jobs.empty()

    # -- observers (inference thread) ------------------------------------------------------------

    def set_baselines(self, devices: Mapping[str, Normalisation]) -> None:
        for device, norm in devices.items():
            self.trigger.set_baseline(device, norm)

    def note_episode(self, device: str, start: float, end: float) -> None:
        """A closed anomaly episode: its windows never become training data."""
        self._episodes.setdefault(device, []).append((start, end))
        del self._episodes[device][:-1000]

    def _on_frame(self, frame: SensorFrame) -> None:
        if not self.config.trigger.enabled:
            return
        times = frame.times()
        self.trigger.observe_readings(frame.device, times, frame.values)
        now = float(times[-1])
        if now < self._next_check.get(frame.device, -np.inf):
            return
        self._next_check[frame.device] = now + self.config.check_every_s
        if self.busy:
            return  # one job at a time; the deviation, if real, persists
        firing = self.trigger.check(frame.device, now)
        if firing is not None:
            self.stats.firings += 1
            self._jobs.put(firing)

    def _on_block(
        self,
        block: WindowBlock,
        normalised: NDArray[np.float32],
        score: NDArray[np.float32],
        threshold: float,
        in_episode: bool,
    ) -> None:
        above = score > threshold
        self.windows.append(
            block.device, normalised, block.end_time, score=score, in_episode=above | in_episode
        )
        self._note_stored()
        self.trigger.observe_scores(
            block.device, float(block.end_time[-1]), int(above.sum()), block.count
        )

    def _on_calibration_windows(
        self, device: str, normalised: NDArray[np.float32], end_time: NDArray[np.float64]
    ) -> None:
        """A device's calibration windows are normal by definition: a node can train on them
        in its first round, before it has scored anything."""
        self.windows.append(device, normalised, end_time)
        self._note_stored()

    def _note_stored(self) -> None:
        if not self._has_data and len(self.windows) >= self.config.min_train_windows:
            self._has_data = True
            if self.on_trainable is not None:
                self.on_trainable()

    @property
    def trainable(self) -> bool:
        """A base model to train from and enough stored windows to train on: what the node's
        status tells the aggregator, so rounds ask only nodes that can answer."""
        return self.base is not None and self._has_data

    def submit_command(self, command: Command) -> None:
        self._jobs.put(command)

    # -- the worker thread -----------------------------------------------------------------------

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._busy.set()
            try:
                if isinstance(job, Firing):
                    self._fine_tune(job)
                else:
                    self._round(job)
            except TrainingFailedError as exc:
                self.stats.failures += 1
                self._event("training_failed", None, _failure(job, exc.kind, exc.reason))
            except ModelRejectedError as exc:
                self.stats.failures += 1
                self._event("training_failed", None, _failure(job, "export", exc.reason))
            finally:
                self._busy.clear()
                release_free_memory()

    def _fine_tune(self, firing: Firing) -> None:
        why: dict[str, Plain] = {
            "statistic": firing.statistic,
            "channel": firing.channel,
            "deviation": round(firing.deviation, 4),
            "baseline": firing.baseline,
            "recent": firing.recent,
            "since": firing.since,
            "time": firing.time,
        }
        self._event("trigger", firing.device, why)
        base, current = self.base, self.current
        if base is None or current is None:
            self._event("training_skipped", firing.device, {"reason": "no model to fine-tune"})
            return
        recent = self.windows.snapshot(
            self.config.train_windows,
            since=firing.since,
            exclude=self._episodes,
            include_episodes=True,
        )
        if recent.windows.shape[0] < self.config.min_train_windows:
            self._event(
                "training_skipped",
                firing.device,
                {"reason": f"only {recent.windows.shape[0]} windows since the drift began"},
            )
            return
        old = self.engine.normalisation(firing.device)
        new = firing.recent_normalisation
        windows = recent.windows.copy()
        mine = recent.device == firing.device
        if old is not None:
            raw = windows[mine] * old.std + old.mean
            windows[mine] = (raw - new.mean) / new.std
        result, scorer, threshold, held_out = self._train(
            base.spec, current, windows, self.config.training
        )
        self.engine.offer_model(
            ActiveModel(
                scorer,
                base.model,
                base.version,
                "local",
                threshold,
                normalisations={firing.device: new},
                calibration=held_out,
            )
        )
        self.current = result.arrays
        self.store.save_arrays("model", result.arrays)
        self.store.save_model(
            StoredModel(base.model, base.version, "local", base.spec.to_plain(), result.onnx)
        )
        self.trigger.set_baseline(firing.device, new)
        self.stats.finetunes += 1
        metrics = result.metrics.as_floats()
        self._event(
            "finetune",
            firing.device,
            {
                **{k: float(v) for k, v in metrics.items()},
                "threshold": threshold,
                "reason": firing.statistic,
            },
        )
        self._send_update(base, result, round_id=None)

    def _round(self, command: Command) -> None:
        params = command.params
        self._await_base(command)
        refusal = self._refusal(command)
        if refusal is not None:
            self.stats.refused_commands += 1
            self._event(
                "command_refused", None, {"command_id": command.command_id, "reason": refusal}
            )
            return
        base = self.base
        assert base is not None  # noqa: S101 - _refusal checked it
        round_id = int(params["round_id"])  # type: ignore[arg-type]
        self._last_round = round_id
        recent = self.windows.snapshot(self.config.train_windows, exclude=self._episodes)
        if recent.windows.shape[0] < self.config.min_train_windows:
            self._event(
                "command_refused",
                None,
                {
                    "command_id": command.command_id,
                    "reason": f"only {recent.windows.shape[0]} normal windows stored",
                },
            )
            return
        config = round_training(params, self.config.training)
        # Every window trains: the round's threshold comes later, from the node's calibration
        # set under the next global version, so nothing needs holding out here.
        result = self._run_job(TrainingJob(base.spec, base.arrays, recent.windows, config))
        self._send_update(base, result, round_id=round_id)
        self.stats.rounds += 1  # after the outbox has it: a counted round has its update stored

    def _await_base(self, command: Command) -> None:
        """A command can overtake the global model it names (the model is bigger and is
        installed on another thread): give a newer base a moment to arrive before refusing."""
        wanted = command.params.get("base_version")
        if not isinstance(wanted, int):
            return
        until = time.monotonic() + BASE_WAIT_S
        if command.deadline is not None:
            until = min(until, time.monotonic() + command.deadline - time.time())
        while time.monotonic() < until and (self.base is None or self.base.version < wanted):
            time.sleep(0.05)

    def _refusal(self, command: Command) -> str | None:
        if command.action != "train":
            return f"action {command.action!r} is not supported"
        if command.deadline is not None and time.time() > command.deadline:
            return "late: the round's deadline has passed"
        round_id = command.params.get("round_id")
        base_version = command.params.get("base_version")
        if not isinstance(round_id, int) or not isinstance(base_version, int):
            return "params need integer round_id and base_version"
        if round_id <= self._last_round:
            return f"superseded: round {round_id} is not newer than round {self._last_round}"
        if self.base is None or self.base.version != base_version:
            have = None if self.base is None else self.base.version
            return f"base version {base_version} is not the node's global version {have}"
        return None

    # -- helpers ---------------------------------------------------------------------------------

    def _train(
        self,
        spec: ModelSpec,
        start: Mapping[str, NDArray[np.float32]],
        windows: NDArray[np.float32],
        config: TrainingConfig,
    ) -> tuple[TrainingResult, WindowScorer, float, NDArray[np.float32]]:
        """Train on most windows; calibrate the threshold on the held-out rest."""
        rng = default_rng(0)
        order = rng.permutation(windows.shape[0])
        cut = int(windows.shape[0] * (1 - self.config.holdout_fraction))
        train, held_out = windows[order[:cut]], windows[order[cut:]]
        result = self._run_job(TrainingJob(spec, start, np.ascontiguousarray(train), config))
        w, c = spec.window, spec.channels
        scorer = WindowScorer(result.onnx, w, c)
        scores = np.concatenate(
            [scorer.score(held_out[i : i + 1024]).score for i in range(0, held_out.shape[0], 1024)]
        )
        threshold = calibrate_threshold(scores, self.engine.config.detector)
        current = self.engine.model
        if current is not None and current.threshold is not None:
            # A few minutes of new normal cannot show every operating point the calibration
            # saw: never make the threshold tighter than the node's established one.
            threshold = max(threshold, current.threshold)
        return result, scorer, threshold, held_out

    def _run_job(self, job: TrainingJob) -> TrainingResult:
        """Train in the child process, in a scratch directory removed afterwards."""
        workdir = Path(tempfile.mkdtemp(prefix="train-", dir=self.store.directory))
        try:
            return run_training(job, workdir, self.config.timeout_s)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _send_update(self, base: BaseModel, result: TrainingResult, round_id: int | None) -> None:
        update = update_from(
            self.node,
            base.model,
            base.version,
            base.arrays,
            result,
            round_id=round_id,
            update_id=uuid.uuid4().hex,
            created_at=time.time(),
        )
        if self.sender is None:
            raise RuntimeError("LocalLearner.start was not called")
        put = self.sender.send_update(self._updates_topic, update)
        if put.dropped:
            self._event(
                "updates_dropped",
                None,
                {"update_ids": [d.update_id for d in put.dropped], "reason": "outbox full"},
            )


def update_from(
    node: str,
    model: str,
    base_version: int,
    base: Mapping[str, NDArray[np.float32]],
    result: TrainingResult,
    *,
    round_id: int | None,
    update_id: str,
    created_at: float,
) -> ModelUpdate:
    """The update a node sends for a training result: the float32 delta from its base
    version, weighted by the samples it trained on, with the trainer's metrics."""
    delta = {k: (result.arrays[k] - base[k]).astype(np.float32) for k in base}
    return ModelUpdate(
        node=node,
        model=model,
        base_version=base_version,
        update_id=update_id,
        num_samples=int(result.metrics.samples),
        arrays=delta,
        metrics=result.metrics.as_floats(),
        round_id=round_id,
        created_at=created_at,
    )


def round_training(params: Mapping[str, Plain], node: TrainingConfig) -> TrainingConfig:
    """A round's training config: the command's epochs, lr and FedProx ``mu``; the node's own
    batch size and budgets (what its hardware affords); the default seed."""
    return TrainingConfig(
        epochs=int(params.get("epochs", 1)),  # type: ignore[arg-type]
        lr=float(params.get("lr", 1e-3)),  # type: ignore[arg-type]
        mu=float(params.get("mu", 0.0)),  # type: ignore[arg-type]
        batch_size=node.batch_size,
        time_budget_s=node.time_budget_s,
        memory_budget_mb=node.memory_budget_mb,
    )


def _failure(job: Firing | Command, kind: str, reason: str) -> dict[str, Plain]:
    """A training_failed event's data; a round's names its command, so the aggregator knows
    the node will not deliver."""
    data: dict[str, Plain] = {"kind": kind, "reason": reason}
    if isinstance(job, Command):
        data["command_id"] = job.command_id
    return data
