"""Training rounds on command, refusals, and updates that survive broker and node restarts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_node.learning import LearningConfig
from edge_node.service import EdgeNode
from fedge.broker import RunningBroker
from fedge.mqtt import MqttClient, MqttOptions
from fedge.topics import NodeChannel, TopicRoot
from fedge.transport import RejectLog, decoding
from fedge.wire import Command, Event, ModelUpdate, Plain, encode
from tests.edge_node.service_support import frames, make_node, trained_model
from tests.support import Collector, wait_for

pytestmark = pytest.mark.broker


class Observer:
    """A persistent-session client that sees every event and update, even across restarts."""

    def __init__(self, broker: RunningBroker, topics: TopicRoot) -> None:
        options = MqttOptions(
            protocol=broker.protocol,
            client_id=f"observer-{uuid.uuid4().hex[:8]}",
            persistent_session=True,
            reconnect_max_s=0.5,
        )
        self.topics = topics
        self.client = MqttClient(broker.url, options).connect()
        self.events: Collector[Event] = Collector()
        self.updates: Collector[ModelUpdate] = Collector()
        rejects = RejectLog()
        self.client.subscribe(
            topics.node_filter(NodeChannel.EVENTS),
            decoding(Event, lambda t, e: self.events(e), rejects),
        )
        self.client.subscribe(
            topics.node_filter(NodeChannel.UPDATES),
            decoding(ModelUpdate, lambda t, u: self.updates(u), rejects),
        )

    def command(
        self, params: dict[str, Plain], deadline_s: float = 60.0, action: str = "train"
    ) -> str:
        command_id = uuid.uuid4().hex[:12]
        command = Command("n1", action, command_id, time.time(), params, time.time() + deadline_s)
        self.client.publish(str(self.topics.node("n1", NodeChannel.COMMANDS)), encode(command))
        self.client.flush(10)
        return command_id

    def refusals(self) -> dict[str, str]:
        return {
            str(e.data["command_id"]): str(e.data["reason"])
            for e in self.events.items
            if e.type == "command_refused"
        }


@pytest.fixture
def observer(broker: RunningBroker, topic_root: TopicRoot) -> Iterator[Observer]:
    watcher = Observer(broker, topic_root)
    yield watcher
    watcher.client.close()


def _ready_node(
    broker: RunningBroker,
    topics: TopicRoot,
    state: Path,
    client: MqttClient,
    learning: LearningConfig | None = None,
) -> EdgeNode:
    """A node with the global model, calibrated, with normal windows in its store."""
    node = make_node(broker.url, broker.protocol, topics, state, learning=learning)
    node.start()
    assert node.client.wait_ready(10)
    client.publish(str(topics.model("default")), encode(trained_model()), retain=True)
    assert wait_for(lambda: node.engine.model is not None, 20)
    for frame in frames("pump", 120):
        client.publish(str(topics.sensors("n1", "pump")), encode(frame))
    client.flush(10)
    assert wait_for(lambda: node.engine.stats.windows_scored > 500, 20)
    return node


def _round(round_id: int, base_version: int = 1) -> dict[str, Plain]:
    return {"round_id": round_id, "base_version": base_version, "epochs": 1, "lr": 1e-3, "mu": 0.01}


def test_train_command_runs_a_round_and_refuses_what_it_must(
    broker: RunningBroker, topic_root: TopicRoot, observer: Observer, tmp_path: Path
) -> None:
    """A train command yields an update for its round; late, superseded, wrong-base and
    unknown commands are refused with their reason."""
    node = _ready_node(broker, topic_root, tmp_path / "n1", observer.client)
    try:
        observer.command(_round(3))
        assert wait_for(lambda: len(observer.updates.items) == 1, 60)
        superseded = observer.command(_round(2))
        late = observer.command(_round(4), deadline_s=-1.0)
        wrong_base = observer.command(_round(5, base_version=7))
        unknown = observer.command({}, action="dance")
        assert wait_for(lambda: len(observer.refusals()) == 4, 30)
    finally:
        node.stop()

    update = observer.updates.items[0]
    assert (update.node, update.round_id, update.base_version) == ("n1", 3, 1)
    assert update.num_samples > 0
    assert set(update.arrays) == set(trained_model().arrays)
    refusals = observer.refusals()
    assert "superseded" in refusals[superseded]
    assert "late" in refusals[late]
    assert "base version 7" in refusals[wrong_base]
    assert "not supported" in refusals[unknown]


def test_update_survives_a_broker_outage_and_a_node_restart(
    broker: RunningBroker, topic_root: TopicRoot, observer: Observer, tmp_path: Path
) -> None:
    """An update trained while the broker is down waits in the outbox, survives the node's
    restart, and arrives once the broker is back: not lost, and one update id."""
    state = tmp_path / "n1"
    node = _ready_node(broker, topic_root, state, observer.client)
    observer.command(_round(1))
    assert wait_for(lambda: node.learner is not None and node.learner.busy, 10)
    broker.stop()  # the update is trained while nobody can receive it
    assert wait_for(lambda: node.learner is not None and node.learner.stats.rounds == 1, 60)
    assert node.learner is not None
    assert len(node.learner.outbox) == 1
    node.stop()
    broker.start()

    restarted = make_node(broker.url, broker.protocol, topic_root, state)
    restarted.start()
    try:
        assert wait_for(lambda: len(observer.updates.items) >= 1, 30)
        time.sleep(1.0)  # a duplicate, if any, would arrive now
    finally:
        restarted.stop()

    ids = {u.update_id for u in observer.updates.items}
    assert len(ids) == 1
    assert observer.updates.items[0].round_id == 1


def test_a_trainer_timeout_is_an_event_and_the_old_model_keeps_scoring(
    broker: RunningBroker, topic_root: TopicRoot, observer: Observer, tmp_path: Path
) -> None:
    """A trainer that cannot finish in time is killed and reported; scoring goes on."""
    tight = LearningConfig(timeout_s=0.05)
    node = _ready_node(broker, topic_root, tmp_path / "n1", observer.client, learning=tight)
    try:
        scored = node.engine.stats.windows_scored
        observer.command(_round(1))
        assert wait_for(lambda: any(e.type == "training_failed" for e in observer.events.items), 30)
        for frame in frames("pump", 10, first_seq=120):
            observer.client.publish(str(topic_root.sensors("n1", "pump")), encode(frame))
        observer.client.flush(10)
        assert wait_for(lambda: node.engine.stats.windows_scored > scored, 10)
    finally:
        node.stop()

    failure = next(e for e in observer.events.items if e.type == "training_failed")
    assert failure.data["kind"] == "timeout"
    assert observer.updates.items == []
    model = node.engine.model
    assert model is not None
    assert model.origin == "global"
