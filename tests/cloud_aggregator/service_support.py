"""Shared pieces for aggregator tests that cross the wire: an aggregator, ready edge nodes, and
a scripted participant that speaks the node protocol with updates the test chooses."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.config import AggregatorConfig, BufferConfig, RoundConfig
from cloud_aggregator.registry import Registry
from cloud_aggregator.service import Aggregator
from edge_node.learning import LearningConfig
from edge_node.service import EdgeNode
from edge_node.trainer.job import TrainingConfig
from fedge.broker import RunningBroker
from fedge.models import ModelSpec
from fedge.mqtt import MqttClient, MqttOptions
from fedge.topics import NodeChannel, TopicRoot
from fedge.transport import RejectLog, decoding
from fedge.wire import Command, GlobalModel, ModelUpdate, NodeStatus, encode
from tests.edge_node.service_support import CHANNELS, WINDOW, frames, make_node
from tests.support import Collector, wait_for

SPEC = ModelSpec("dense_ae", WINDOW, len(CHANNELS), {"hidden": [32, 8]})


def config(registry: Path, **changes: Any) -> AggregatorConfig:
    """An aggregator for the edge test nodes' model; round settings from ``changes``."""
    buffer = changes.pop("buffer", BufferConfig(k=1, max_wait_s=60.0))
    rounds = RoundConfig(**{"min_nodes": 2, "deadline_s": 60.0, "interval_s": 0.1, **changes})
    return AggregatorConfig(
        registry=registry, spec=SPEC, rounds=rounds, buffer=buffer, presence_timeout_s=60.0
    )


class Running:
    """An in-process aggregator, started; ``drive()`` runs its control loop on a thread
    (tests make their nodes ready first, so no round asks a node with nothing to train on)."""

    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator
        self._worker = threading.Thread(target=aggregator.run, daemon=True)

    def drive(self) -> Aggregator:
        self._worker.start()
        return self.aggregator

    def stop(self) -> None:
        self.aggregator.stop()
        if self._worker.is_alive():
            self._worker.join(30)


@contextmanager
def running(
    broker: RunningBroker, topics: TopicRoot, settings: AggregatorConfig
) -> Iterator[Running]:
    options = MqttOptions(
        protocol=broker.protocol,
        client_id=f"aggregator-{uuid.uuid4().hex[:8]}",
        persistent_session=True,
        reconnect_max_s=0.5,
    )
    registry = Registry(settings.registry)
    aggregator = Aggregator(settings, MqttClient(broker.url, options), topics, registry)
    aggregator.start()
    assert aggregator.client.wait_ready(10)
    handle = Running(aggregator)
    try:
        yield handle
    finally:
        handle.stop()
        aggregator.client.close()
        registry.close()


def ready_node(
    broker: RunningBroker, topics: TopicRoot, state: Path, name: str, feeder: MqttClient
) -> EdgeNode:
    """A real edge node that installed the aggregator's model and has normal windows stored."""
    learning = LearningConfig(training=TrainingConfig(epochs=1), min_train_windows=50)
    node = make_node(broker.url, broker.protocol, topics, state, node=name, learning=learning)
    node.start()
    assert node.client.wait_ready(10)
    assert wait_for(lambda: node.engine.model is not None, 30), f"{name} got no global model"
    for frame in frames("pump", 120):
        feeder.publish(str(topics.sensors(name, "pump")), encode(frame))
    feeder.flush(10)
    assert wait_for(lambda: node.engine.stats.windows_scored > 500, 30)
    return node


class ScriptedNode:
    """A participant driven by the test: it announces itself, hears its commands and the
    global model, and publishes whatever update the test gives it."""

    def __init__(self, broker: RunningBroker, topics: TopicRoot, name: str) -> None:
        self.name = name
        self.topics = topics
        options = MqttOptions(protocol=broker.protocol, client_id=f"scripted-{name}")
        self.client = MqttClient(broker.url, options).connect()
        self.commands: Collector[Command] = Collector()
        self.models: Collector[GlobalModel] = Collector()
        rejects = RejectLog()
        self.client.subscribe(
            str(topics.node(name, NodeChannel.COMMANDS)),
            decoding(Command, lambda t, c: self.commands(c), rejects),
        )
        self.client.subscribe(
            str(topics.model("default")),
            decoding(GlobalModel, lambda t, m: self.models(m), rejects),
        )

    def announce(self, version: int | None, *, online: bool = True) -> None:
        status = NodeStatus(
            self.name,
            online=online,
            time=time.time(),
            model="default",
            model_version=version,
            capabilities=("inference", "train"),
        )
        topic = str(self.topics.node(self.name, NodeChannel.STATUS))
        self.publish(topic, encode(status), retain=True)

    def send(self, update: ModelUpdate, *, topic_node: str | None = None) -> None:
        node = topic_node or self.name
        self.publish(str(self.topics.node(node, NodeChannel.UPDATES)), encode(update))

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)
        assert self.client.flush(10)

    def close(self) -> None:
        self.client.close()


def delta_like(model: GlobalModel, scale: float, seed: int) -> dict[str, NDArray[np.float32]]:
    """A random delta with the model's names and shapes."""
    rng = np.random.default_rng(seed)
    return {
        name: (rng.standard_normal(array.shape) * scale).astype(np.float32)
        for name, array in model.arrays.items()
    }


def update_for(
    node: str,
    base: GlobalModel,
    /,
    *,
    round_id: int | None = None,
    samples: int = 100,
    seed: int = 0,
    **changes: Any,
) -> ModelUpdate:
    """A well-formed update against ``base``; ``changes`` override any field."""
    fields: dict[str, Any] = {
        "node": node,
        "model": base.model,
        "base_version": base.version,
        "update_id": uuid.uuid4().hex,
        "num_samples": samples,
        "arrays": delta_like(base, 0.01, seed),
        "round_id": round_id,
        **changes,
    }
    return ModelUpdate(**fields)


def fedavg(base: GlobalModel, updates: list[ModelUpdate]) -> dict[str, NDArray[np.float64]]:
    """The FedAvg result computed the plain way, in float64."""
    total = sum(u.num_samples for u in updates)
    return {
        name: array.astype(np.float64)
        + sum(u.num_samples * u.arrays[name].astype(np.float64) for u in updates) / total
        for name, array in base.arrays.items()
    }
