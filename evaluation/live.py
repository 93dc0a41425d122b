"""The federated mode through the real system: a broker, the aggregator service, one edge node
service per run, the runs replayed as sensor streams, the nodes' events collected over MQTT.

Phase 1 replays every run's training part; each node calibrates on it and keeps those windows
as training data, the aggregator runs its rounds (every node trains in its own trainer child
process), and each node installs the last version with its own threshold. Phase 2 replays the
test parts; the anomaly episodes the nodes publish on their ``events`` topics become the
flagged readings. Traffic is counted on the broker side: the payloads of every update, command
and global model, as the observer receives them.

The services run in this process (each with its own MQTT connection) so the evaluation can
wait for them precisely; every message between them still crosses the broker.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.config import AggregatorConfig, BufferConfig, RoundConfig
from cloud_aggregator.registry import Registry
from cloud_aggregator.service import Aggregator
from device_sim.publish import FramePublisher
from edge_node.service import EdgeConfig, EdgeNode, client_options
from evaluation.inprocess import ModeResult, RoundRecord, Traffic, raw_cost
from evaluation.nodes import Detection, NodeData, calibration_windows, episodes_from, verdict
from evaluation.protocol import MODEL, EvalConfig
from evaluation.skab import EvaluationError
from fedge.broker import start_broker
from fedge.endpoint import BrokerUrl
from fedge.errors import WireError
from fedge.mqtt import MqttClient, MqttOptions
from fedge.topics import NodeChannel, TopicRoot
from fedge.transport import Message, RejectLog
from fedge.wire import Command, Event, GlobalModel, ModelUpdate, decode

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
M = TypeVar("M", Event, ModelUpdate, Command, GlobalModel)
ROUNDS_TIMEOUT_S = 1800.0
SCORING_TIMEOUT_S = 300.0


class Observer:
    """Counts model traffic per node and round, and keeps every node's anomaly events."""

    def __init__(self, topics: TopicRoot) -> None:
        self.topics = topics
        self.rejects = RejectLog(log)
        self.lock = threading.Lock()
        self.events: dict[str, list[tuple[str, float, float | None]]] = {}
        self.traffic = Traffic()
        self.model_bytes: dict[int, int] = {}
        self.commands: dict[str, list[int]] = {}  # node -> base version per round

    def attach(self, client: MqttClient) -> None:
        client.subscribe(self.topics.node_filter(NodeChannel.EVENTS), self._on_event)
        client.subscribe(self.topics.node_filter(NodeChannel.UPDATES), self._on_update)
        client.subscribe(self.topics.node_filter(NodeChannel.COMMANDS), self._on_command)
        client.subscribe(str(self.topics.model(MODEL)), self._on_model)

    def _decode(self, message: Message, kind: type[M]) -> M | None:
        try:
            return decode(message.payload, kind)
        except WireError as exc:
            self.rejects.record_wire_error(message.topic, exc)
            return None

    def _on_event(self, message: Message) -> None:
        event = self._decode(message, Event)
        if event is None or event.type != "anomaly":
            return
        data = event.data
        start, end = data.get("start"), data.get("end")
        entry = (
            str(data.get("state")),
            float(start) if isinstance(start, int | float) else np.nan,
            float(end) if isinstance(end, int | float) else None,
        )
        with self.lock:
            self.events.setdefault(event.node, []).append(entry)

    def _on_update(self, message: Message) -> None:
        update = self._decode(message, ModelUpdate)
        if update is not None and update.round_id is not None:
            with self.lock:
                self.traffic.add(update.node, update.round_id - 1, len(message.payload), 0)

    def _on_command(self, message: Message) -> None:
        command = self._decode(message, Command)
        round_id = command.params.get("round_id") if command else None
        base = command.params.get("base_version") if command else None
        if command is not None and isinstance(round_id, int) and isinstance(base, int):
            with self.lock:
                self.traffic.add(command.node, round_id - 1, 0, len(message.payload))
                self.commands.setdefault(command.node, []).append(base)

    def _on_model(self, message: Message) -> None:
        model = self._decode(message, GlobalModel)
        if model is not None:
            with self.lock:
                self.model_bytes[model.version] = len(message.payload)

    def finish(self, nodes: Sequence[NodeData], rounds: int) -> Traffic:
        """Each round's base version is a download for every node asked to train on it."""
        with self.lock:
            for node, bases in self.commands.items():
                for index, base in enumerate(bases):
                    self.traffic.add(node, index, 0, self.model_bytes.get(base, 0))
            self.traffic.final_model = self.model_bytes.get(rounds, 0)
        raw_cost(self.traffic, nodes)
        return self.traffic


def run_live(
    nodes: Sequence[NodeData], config: EvalConfig, broker: str | None, progress: Progress
) -> ModeResult:
    started = time.monotonic()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fedge-eval-")))
        url = BrokerUrl.parse(broker) if broker else stack.enter_context(start_broker()).url
        topics = TopicRoot(f"fedge-eval-{int(time.time())}/fedge/v1")
        progress(f"live: broker {url}, {len(nodes)} edge nodes, topics under {topics}")
        registry = stack.enter_context(Registry(workdir / "aggregator.sqlite"))
        run = LiveRun(nodes, config, url=url, topics=topics, workdir=workdir, registry=registry)
        stack.callback(run.stop)  # before the registry closes: the services write to it
        run.start()
        run.replay(training=True)
        progress("live: training parts replayed; rounds running")
        run.wait_for_rounds()
        progress(f"live: {config.rounds} rounds done; replaying the test parts")
        run.replay(training=False)
        result = run.collect()
    result.seconds = round(time.monotonic() - started, 1)
    progress(f"live: done, F1 {result.overall.f1:.3f}")
    return result


class LiveRun:
    """The services of one live evaluation, and how to wait for each of its phases."""

    def __init__(
        self,
        nodes: Sequence[NodeData],
        config: EvalConfig,
        *,
        url: BrokerUrl,
        topics: TopicRoot,
        workdir: Path,
        registry: Registry,
    ) -> None:
        self.nodes, self.config, self.registry = nodes, config, registry
        self.observer = Observer(topics)
        self.watcher = MqttClient(url, MqttOptions(client_id=f"fedge-eval-observer-{id(self)}"))
        self.publisher = FramePublisher(self.watcher, topics, qos=1)
        self.scores: dict[str, list[tuple[NDArray[np.int64], NDArray[np.float32]]]] = {}
        self.edges = [
            EdgeNode(
                EdgeConfig(
                    node=data.node,
                    state_dir=workdir / "nodes" / data.node,
                    model=MODEL,
                    channels=data.channels,
                    engine=config.engine(calibration_windows(data)),
                    heartbeat_s=5.0,
                    learning=config.learning(),
                ),
                MqttClient(url, client_options(data.node, topics, MqttOptions())),
                topics,
                on_scored=self._on_scored,
            )
            for data in nodes
        ]
        rounds = RoundConfig(
            rounds=config.rounds,
            interval_s=0.0,
            min_nodes=len(nodes),
            max_nodes=len(nodes),
            deadline_s=ROUNDS_TIMEOUT_S,
            epochs=config.epochs,
            lr=config.lr,
        )
        settings = AggregatorConfig(
            model=MODEL,
            registry=registry.path,
            spec=config.spec_for(len(nodes[0].channels)),
            seed=config.seed,
            strategy=config.strategy,
            rounds=rounds,
            buffer=BufferConfig(k=1),
            presence_timeout_s=ROUNDS_TIMEOUT_S,
        )
        self._client = MqttClient(url, MqttOptions(client_id=f"fedge-eval-aggregator-{id(self)}"))
        self.aggregator = Aggregator(settings, self._client, topics, registry)
        self._worker = threading.Thread(
            target=self.aggregator.run, kwargs={"until_done": True}, daemon=True
        )
        self._started: list[Callable[[], None]] = []

    def _on_scored(
        self, device: str, end: NDArray[np.int64], score: NDArray[np.float32], version: int
    ) -> None:
        self.scores.setdefault(device, []).append((end.copy(), score.copy()))

    def start(self) -> None:
        self.observer.attach(self.watcher)
        self.watcher.start()
        self._started.append(self.watcher.close)
        if not self.watcher.wait_connected(10):
            raise EvaluationError("cannot connect to the broker")
        for edge in self.edges:
            edge.start()
            self._started.append(edge.stop)
        self.aggregator.start()
        self._started.append(self._client.close)
        self._started.append(self.aggregator.stop)
        self._worker.start()

    def stop(self) -> None:
        """Aggregator first (no more rounds), then the nodes, then the observer."""
        for stop in reversed(self._started):
            stop()
        if self._worker.is_alive():
            self._worker.join(30)

    def replay(self, *, training: bool) -> None:
        """Publish every run's training (or test) frames through the broker."""
        for data in self.nodes:
            part = (
                data.frames[: data.train_frames] if training else data.frames[data.train_frames :]
            )
            self.publisher.send_batch([(data.node, frame, None) for frame in part])

    def wait_for_rounds(self) -> None:
        aggregator, rounds = self.aggregator, self.config.rounds
        _wait(
            lambda: aggregator.done and aggregator.current.version >= rounds,
            ROUNDS_TIMEOUT_S,
            lambda: f"the aggregator closed {aggregator.stats.rounds_closed} of {rounds} rounds",
        )
        _wait(
            lambda: all(_installed(e, rounds) for e in self.edges),
            60.0,
            lambda: (
                "nodes without the last version: "
                + ", ".join(e.config.node for e in self.edges if not _installed(e, rounds))
            ),
        )

    def collect(self) -> ModeResult:
        """Wait until every test window is scored and its events are in; judge each node."""
        expected = {data.node: int(data.test.shape[0]) for data in self.nodes}

        def unscored() -> list[str]:
            return [
                e.config.node
                for e in self.edges
                if e.engine.stats.windows_scored < expected[e.config.node]
            ]

        _wait(
            lambda: not unscored(), SCORING_TIMEOUT_S, lambda: f"unscored windows on {unscored()}"
        )

        def missing_events() -> list[str]:
            with self.observer.lock:
                received = {n: len(v) for n, v in self.observer.events.items()}
            return [
                e.config.node
                for e in self.edges
                if received.get(e.config.node, 0)
                < e.engine.stats.episodes + e.engine.stats.episodes_closed
            ]

        _wait(lambda: not missing_events(), 60.0, lambda: f"events missing from {missing_events()}")
        detections: dict[str, Detection] = {}
        for data, edge in zip(self.nodes, self.edges, strict=True):
            model = edge.engine.model
            assert model is not None  # noqa: S101 - wait_for_rounds() saw it installed
            assert model.threshold is not None  # noqa: S101
            with self.observer.lock:
                episodes = episodes_from(self.observer.events.get(data.node, []))
            score = _test_scores(self.scores.get(data.node, []), data)
            detections[data.node] = verdict(
                data, model.threshold, episodes, score, self.config.train_rows
            )
        closed = sorted(r.round_id for r in self.registry.rounds(MODEL) if r.state == "closed")
        rounds = [RoundRecord(i, {}, {}, float("nan")) for i in closed]
        traffic = self.observer.finish(self.nodes, self.config.rounds)
        return ModeResult("federated", detections, rounds, traffic, 0.0, live=True)


def _installed(edge: EdgeNode, version: int) -> bool:
    model = edge.engine.model
    return model is not None and model.version >= version and model.threshold is not None


def _test_scores(
    parts: list[tuple[NDArray[np.int64], NDArray[np.float32]]], data: NodeData
) -> NDArray[np.float32]:
    """The scores of the test windows in window order (what the plots draw)."""
    if not parts:
        return np.zeros(0, np.float32)
    end = np.concatenate([p[0] for p in parts])
    score = np.concatenate([p[1] for p in parts])
    order = np.argsort(end, kind="stable")
    return score[order][np.isin(end[order], data.test_end_index)]


def _wait(done: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    until = time.monotonic() + timeout
    while not done():
        if time.monotonic() > until:
            raise EvaluationError(f"live run timed out after {timeout:.0f} s: {what()}")
        time.sleep(0.1)
