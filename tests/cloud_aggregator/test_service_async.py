"""The async path end to end: a real edge node's drift trigger fine-tunes locally, and its
round-less update becomes a new global version through the FedBuff buffer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cloud_aggregator.config import BufferConfig
from device_sim.pump import CHANNELS
from fedge.broker import RunningBroker
from fedge.models import ModelSpec
from fedge.mqtt import MqttClient, MqttOptions
from fedge.topics import TopicRoot
from tests.cloud_aggregator.service_support import config, running
from tests.edge_node import test_learning as drift
from tests.support import wait_for

pytestmark = pytest.mark.broker


def test_a_drift_triggered_update_becomes_an_async_version(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """No rounds run; the node's drift fine-tune sends an update with no round, the buffer
    (K = 1) turns it into version 1 (origin async, parent 0), and the node installs it."""
    trained = drift._global_model()
    weights = tmp_path / "pump.npz"
    np.savez(weights, **dict(trained.arrays))  # type: ignore[arg-type]
    spec = ModelSpec("dense_ae", drift.WINDOW, len(CHANNELS), {"hidden": [32, 8]})
    settings = dataclasses.replace(
        config(tmp_path / "registry.db", enabled=False),
        spec=spec,
        init=weights,
        buffer=BufferConfig(k=1, max_staleness=2),
    )
    client = MqttClient(broker.url, MqttOptions(protocol=broker.protocol)).connect()
    with running(broker, topic_root, settings) as handle:
        aggregator = handle.drive()
        node = drift._node(broker, topic_root, tmp_path / drift.NODE)
        try:
            assert wait_for(lambda: node.engine.model is not None, 30)
            drift._send(client, topic_root, drift._fleet(drift.END), 0, 760)
            assert wait_for(lambda: aggregator.stats.async_versions == 1, 120)
            assert wait_for(
                lambda: node.engine.model is not None and node.engine.model.version == 1, 30
            )
            version = aggregator.registry.get_version("default", 1)
            ledger = aggregator.registry.ledger("default")
        finally:
            node.stop()
            client.close()

    assert version is not None
    assert version.info.origin == "async"
    assert version.info.parent_version == 0
    assert version.info.metrics["updates"] == 1
    [applied] = [r for r in ledger if r.status == "applied"]
    assert (applied.node, applied.round_id, applied.applied_version) == (drift.NODE, None, 1)
    assert aggregator.stats.rounds_closed == 0
