"""Synchronous rounds against a real Mosquitto with real edge nodes: selection, dropouts,
nodes joining mid-round, and what the registry records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud_aggregator.service import Aggregator
from edge_node.service import EdgeNode
from fedge.broker import RunningBroker
from fedge.mqtt import MqttClient, MqttOptions
from fedge.topics import TopicRoot
from fedge.wire import ModelUpdate
from tests.cloud_aggregator.service_support import config, fedavg, ready_node, running
from tests.support import wait_for

pytestmark = pytest.mark.broker


def _round_open(aggregator: Aggregator, round_id: int) -> bool:
    current = aggregator.open_round
    return current is not None and current.round_id == round_id


def test_rounds_complete_when_a_node_drops_out_and_another_joins(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """Round 1 folds three nodes' updates into version 1; in round 2 one node dies mid-round,
    a new node that joins is recruited in its place, and version 2 is their FedAvg."""
    feeder = MqttClient(broker.url, MqttOptions(protocol=broker.protocol)).connect()
    settings = config(tmp_path / "registry.db", min_nodes=3, rounds=2)
    nodes: list[EdgeNode] = []
    try:
        with running(broker, topic_root, settings) as handle:
            for name in ("n1", "n2", "n3"):
                nodes.append(ready_node(broker, topic_root, tmp_path / name, name, feeder))
            aggregator = handle.drive()
            assert wait_for(lambda: aggregator.stats.rounds_closed == 1, 90), _state(aggregator)
            assert wait_for(lambda: _round_open(aggregator, 2), 30), _state(aggregator)
            nodes[2].client.abort()  # n3 loses power while training round 2: its Will fires
            nodes.append(ready_node(broker, topic_root, tmp_path / "n4", "n4", feeder))
            assert wait_for(lambda: aggregator.stats.rounds_closed == 2, 90), _state(aggregator)
            registry = aggregator.registry
            rounds = {r.round_id: r for r in registry.rounds("default")}
            applied = {rid: applied_in(aggregator, rid) for rid in rounds}
            versions = [v.version for v in registry.versions("default")]
            v1, v2 = registry.get_version("default", 1), registry.get_version("default", 2)
            contributions = {c.node: c for c in registry.contributions()}
    finally:
        for node in nodes:
            node.stop()
        feeder.close()

    assert versions == [0, 1, 2]
    assert rounds[1].state == "closed"
    assert rounds[1].result_version == 1
    assert rounds[1].selected == ("n1", "n2", "n3")
    assert sorted(applied[1]) == ["n1", "n2", "n3"]
    assert rounds[2].state == "closed"
    assert rounds[2].result_version == 2
    assert rounds[2].selected == ("n1", "n2", "n3", "n4")  # n4 recruited after n3 died
    assert sorted(applied[2]) == ["n1", "n2", "n4"]
    assert v1 is not None
    assert v2 is not None
    assert v2.info.parent_version == 1
    assert v2.info.round_id == 2
    assert v2.info.metrics["updates"] == 3
    assert contributions["n3"].rounds == 1
    assert contributions["n4"].rounds == 1
    assert contributions["n1"].rounds == 2


def _state(aggregator: Aggregator) -> str:
    """What a failing wait should show: the open round and what the fleet says."""
    current = aggregator.open_round
    round_state = (
        "no round open"
        if current is None
        else f"round {current.round_id}: selected {current.selected}, delivered "
        f"{sorted(current.delivered)}, answered {current.answered}, dropped {current.dropped}"
    )
    return f"{round_state}; {aggregator.stats}; nodes {aggregator.presence.records()}"


def applied_in(aggregator: Aggregator, round_id: int) -> list[str]:
    """The nodes whose updates were applied in ``round_id``."""
    return [
        record.node
        for record in aggregator.registry.ledger("default")
        if record.round_id == round_id and record.status == "applied"
    ]


def test_a_round_version_is_the_fedavg_of_its_updates(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """The version a round publishes equals base + the sample-weighted mean of the deltas
    the nodes sent, computed independently from the updates seen on the wire."""
    from tests.edge_node.test_commands import Observer  # noqa: PLC0415

    observer = Observer(broker, topic_root)
    feeder = MqttClient(broker.url, MqttOptions(protocol=broker.protocol)).connect()
    settings = config(tmp_path / "registry.db", min_nodes=2, rounds=1)
    nodes: list[EdgeNode] = []
    try:
        with running(broker, topic_root, settings) as handle:
            base = handle.aggregator.current
            for name in ("n1", "n2"):
                nodes.append(ready_node(broker, topic_root, tmp_path / name, name, feeder))
            aggregator = handle.drive()
            assert wait_for(lambda: aggregator.stats.rounds_closed == 1, 90)
            result = aggregator.current
    finally:
        for node in nodes:
            node.stop()
        feeder.close()
        observer.client.close()

    updates: list[ModelUpdate] = observer.updates.items
    assert sorted(u.node for u in updates) == ["n1", "n2"]
    expected = fedavg(base, updates)
    assert result.version == 1
    for name, array in result.arrays.items():
        np.testing.assert_allclose(array, expected[name], rtol=1e-5, atol=1e-6)
