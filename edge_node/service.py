"""The always-on edge node: MQTT in and out around the inference engine. Never imports torch.

Threads: paho's network thread decodes messages at the border and hands them on; the
inference thread runs ``InferenceEngine``; a loader thread validates incoming global models
and builds their sessions off the hot path; the main thread waits and sends heartbeats.

Presence: a retained ``online`` status is published on every (re)connect and its ``offline``
twin is registered as the Last Will, so the broker announces the node's death for it.
Anything hostile (bad frames, corrupt or mismatched models) is rejected, counted in
``rejects``, logged once per reason and, for models, reported as a ``model_rejected`` event;
the node keeps scoring with what it had.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edge_node.detector import EpisodeEvent
from edge_node.engine import ActiveModel, EngineConfig, InferenceEngine, ScoredHook
from edge_node.learning import BaseModel, LearningConfig, LocalLearner
from edge_node.outbox import OutboxSender
from edge_node.scorer import ModelRejectedError, WindowScorer
from edge_node.state import Calibration, NodeStore, StateError, StoredModel
from fedge import __version__
from fedge.errors import ConfigError, FedgeError, PublishQueueFullError
from fedge.models import ModelSpec
from fedge.mqtt import MqttClient, MqttOptions, Will
from fedge.topics import NodeChannel, TopicRoot
from fedge.transport import RejectLog, decoding
from fedge.wire import Command, Event, GlobalModel, NodeStatus, Plain, SensorFrame, encode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeConfig:
    """Who the node is, what it listens to, and how it scores."""

    node: str
    state_dir: Path
    model: str = "default"
    channels: tuple[str, ...] = ()
    engine: EngineConfig = field(default_factory=EngineConfig)
    heartbeat_s: float = 30.0
    threads: int = 1
    # None: inference only (a device without torch). Otherwise drift-triggered fine-tuning and
    # aggregator rounds, trained in a child process.
    learning: LearningConfig | None = field(default_factory=LearningConfig)


class EdgeNode:
    """One edge node process: connect, announce, score, report."""

    def __init__(
        self,
        config: EdgeConfig,
        client: MqttClient,
        topics: TopicRoot,
        on_scored: ScoredHook | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.topics = topics
        self.rejects = RejectLog(log)
        self.store = NodeStore(config.state_dir)
        self._status_topic = str(topics.node(config.node, NodeChannel.STATUS))
        self._events_topic = str(topics.node(config.node, NodeChannel.EVENTS))
        self._models: queue.Queue[GlobalModel | None] = queue.Queue(4)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        calibration, stored = self._load_state()
        channels = config.channels or (calibration.channels if calibration else ())
        if not channels:
            raise ConfigError("edge.channels", "give the node's channel names (--channels)")
        if calibration is not None and calibration.channels != channels:
            log.warning("channels changed from %s: recalibrating", list(calibration.channels))
            calibration = None
        self.engine = InferenceEngine(
            channels,
            config.engine,
            self._publish_episode,
            self.rejects,
            calibration=calibration,
            on_scored=on_scored,
        )
        self.engine.on_calibrated = self._calibrated
        self.learner: LocalLearner | None = None
        self.sender: OutboxSender | None = None
        if config.learning is not None:
            self.learner = LocalLearner(
                config.node,
                self.engine,
                self.store,
                str(topics.node(config.node, NodeChannel.UPDATES)),
                self._publish_event,
                config=config.learning,
            )
            self.learner.on_trainable = self._announce
            if calibration is not None:
                self.learner.set_baselines(calibration.devices)
        if stored is not None:
            self._install(stored, from_disk=True)

    # -- start-up ------------------------------------------------------------------------------

    def _load_state(self) -> tuple[Calibration | None, StoredModel | None]:
        try:
            return self.store.load_calibration(), self.store.load_model()
        except StateError as exc:
            log.warning("ignoring unreadable state: %s", exc)
            return None, None

    def start(self) -> None:
        """Start the threads and begin connecting; scoring works before the broker answers."""
        self.client.connect_hooks.append(self._announce)
        node = self.config.node
        self.client.subscribe(
            self.topics.sensors_filter(node),
            decoding(SensorFrame, lambda t, f: self.engine.submit(f), self.rejects),
            qos=1,
        )
        self.client.subscribe(
            str(self.topics.model(self.config.model)),
            decoding(GlobalModel, lambda t, m: self._offer_global(m), self.rejects),
        )
        self.client.subscribe(
            str(self.topics.node(node, NodeChannel.COMMANDS)),
            decoding(Command, lambda t, c: self._on_command(c), self.rejects),
        )
        for name, target in (("inference", self.engine.run), ("model-loader", self._load_models)):
            thread = threading.Thread(target=target, name=f"{node}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.learner is not None:
            self.sender = OutboxSender(self.learner.outbox, self.client)
            self.sender.attach(self.client)
            self.learner.start(self.sender)
            self.sender.start()
        self.client.start()

    def run(self) -> None:
        """Block until ``stop``; republish the status every ``heartbeat_s`` seconds."""
        while not self._stop.wait(self.config.heartbeat_s):
            self._announce()

    def stop(self) -> None:
        """Finish what is queued, publish a clean offline status, disconnect."""
        self._stop.set()
        self.engine.stop()
        self._models.put(None)
        for thread in self._threads:
            thread.join(10)
        if self.learner is not None:
            self.learner.stop()
        if self.sender is not None:
            self.sender.close()
            self.sender.outbox.close()
        try:
            self._publish(self._status_topic, encode(self._status(online=False)), retain=True)
        except FedgeError as exc:
            log.warning("could not publish the offline status: %s", exc)
        self.client.close()

    # -- presence ------------------------------------------------------------------------------

    def _status(self, online: bool) -> NodeStatus:
        model = self.engine.model
        stats = self.engine.stats
        info: dict[str, Plain] = {
            "frames": stats.frames,
            "windows_scored": stats.windows_scored,
            "episodes": stats.episodes,
            "rejected": self.rejects.total,
            "threshold": None if model is None else model.threshold,
        }
        if self.learner is not None:
            info["trainable"] = self.learner.trainable
        return NodeStatus(
            node=self.config.node,
            online=online,
            time=time.time(),
            software_version=__version__,
            model=self.config.model,
            model_version=None if model is None else model.version,
            capabilities=("inference", "train") if self.learner else ("inference",),
            info=info,
        )

    def _announce(self) -> None:
        self._publish(self._status_topic, encode(self._status(online=True)), retain=True, timeout=0)

    # -- models --------------------------------------------------------------------------------

    def _offer_global(self, model: GlobalModel) -> None:
        try:
            self._models.put_nowait(model)
        except queue.Full:
            self.rejects.record(str(self.topics.model(model.model)), "model queue full: dropped")

    def _load_models(self) -> None:
        while (model := self._models.get()) is not None:
            current = self.engine.model
            if model.model != self.config.model or (current and model.version <= current.version):
                continue  # another model's, or the retained copy of what we already run
            stored = StoredModel(
                model.model, model.version, "global", model.architecture, model.onnx
            )
            try:
                self._install(stored, from_disk=False, arrays=model.arrays)
            except ModelRejectedError as exc:
                self.rejects.record(f"global model v{model.version}", exc.reason)
                self._publish_event(
                    "model_rejected", None, {"version": model.version, "reason": exc.reason}
                )

    def _install(
        self,
        stored: StoredModel,
        from_disk: bool,
        arrays: Mapping[str, NDArray[np.float32]] | None = None,
    ) -> None:
        """Validate and build a model off the hot path, then hand it to the engine."""
        window, channels = self.config.engine.window.window, len(self.engine.channels)
        try:
            spec = ModelSpec.from_plain(stored.architecture)
        except ConfigError as exc:
            raise ModelRejectedError(f"bad architecture spec: {exc}") from None
        if (spec.window, spec.channels) != (window, channels):
            raise ModelRejectedError(
                f"model is for windows of {spec.window} x {spec.channels}, "
                f"this node uses {window} x {channels}"
            )
        scorer = WindowScorer(stored.onnx, window, channels, threads=self.config.threads)
        threshold = self.engine.threshold_for(scorer)
        # The learner's base first: once the engine scores with this model, a status saying
        # whether the node can train must already see the base it would train from.
        self._set_learning_base(stored, spec, arrays)
        self.engine.offer_model(
            ActiveModel(scorer, stored.model, stored.version, stored.origin, threshold)
        )
        log.info(
            "model %s v%d (%s) installed, threshold %s",
            stored.model,
            stored.version,
            stored.origin,
            threshold,
        )
        if not from_disk:
            self.store.save_model(stored)
            if arrays is not None:
                self.store.save_arrays("global", arrays)
                self.store.save_arrays("model", arrays)
            self._save_calibration(self.engine.snapshot_calibration())
            self._announce()

    def _set_learning_base(
        self,
        stored: StoredModel,
        spec: ModelSpec,
        arrays: Mapping[str, NDArray[np.float32]] | None,
    ) -> None:
        """Tell the learner which global version it starts from (weights from disk if needed)."""
        if self.learner is None:
            return
        try:
            base = arrays if arrays is not None else self.store.load_arrays("global")
            current = arrays if arrays is not None else self.store.load_arrays("model")
        except StateError as exc:
            log.warning("no weights to train from: %s", exc)
            return
        if base is None:
            return
        self.learner.base = BaseModel(stored.model, stored.version, spec, base)
        self.learner.current = current if current is not None else base

    def _calibrated(self, calibration: Calibration) -> None:
        if self.learner is not None:
            self.learner.set_baselines(calibration.devices)
        self._save_calibration(calibration)

    def _save_calibration(self, calibration: Calibration) -> None:
        try:
            self.store.save_calibration(calibration)
        except OSError as exc:
            log.error("cannot persist calibration to %s: %s", self.store.directory, exc)

    # -- commands and events -------------------------------------------------------------------

    def _on_command(self, command: Command) -> None:
        if command.node != self.config.node:
            self.rejects.record(
                "commands", f"command for {command.node} sent to {self.config.node}"
            )
            return
        if self.learner is None:
            self.rejects.record("commands", "this node does not train (inference only)")
            self._publish_event(
                "command_refused",
                None,
                {"command_id": command.command_id, "reason": "this node does not train"},
            )
            return
        self.learner.submit_command(command)

    def _publish_episode(self, episode: EpisodeEvent, model: ActiveModel) -> None:
        if self.learner is not None and episode.end_time is not None:
            self.learner.note_episode(episode.device, episode.start_time, episode.end_time)
        data: dict[str, Plain] = {
            "state": episode.state,
            "start": episode.start_time,
            "end": episode.end_time,
            "peak_score": episode.peak_score,
            "threshold": episode.threshold,
            "windows": episode.windows,
            "model_version": model.version,
            "top_channels": list(episode.top_channels),
        }
        self._publish_event("anomaly", episode.device, data)

    def _publish_event(self, kind: str, device: str | None, data: dict[str, Plain]) -> None:
        event = Event(self.config.node, kind, time.time(), uuid.uuid4().hex, device, data)
        self._publish(self._events_topic, encode(event))

    def _publish(
        self, topic: str, payload: bytes, retain: bool = False, timeout: float | None = None
    ) -> None:
        try:
            self.client.publish(topic, payload, qos=1, retain=retain, timeout=timeout)
        except PublishQueueFullError as exc:
            self.rejects.record("publish", str(exc))


def will_for(node: str, topics: TopicRoot) -> Will:
    """The Last Will an edge node registers: its retained status, offline."""
    status = NodeStatus(node, online=False, time=0.0, software_version=__version__)
    return Will(str(topics.node(node, NodeChannel.STATUS)), encode(status), qos=1, retain=True)


def client_options(node: str, topics: TopicRoot, base: MqttOptions) -> MqttOptions:
    """The node's MQTT options: client id = node id, its Will, a persistent session."""
    values = {**base.__dict__, "client_id": f"fedge-edge-{node}", "will": will_for(node, topics)}
    values["persistent_session"] = True
    return MqttOptions(**values)
