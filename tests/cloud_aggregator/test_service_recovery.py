"""``fedge aggregator`` killed with SIGKILL mid-round and started again: the round resumes
from the registry, updates sent while it was down arrive through its persistent session,
and a redelivered update is applied once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cloud_aggregator.registry import Registry
from edge_node.service import EdgeNode
from fedge.broker import RunningBroker
from fedge.mqtt import MqttClient, MqttOptions
from fedge.topics import NodeChannel, TopicRoot
from fedge.wire import encode
from tests.cloud_aggregator.service_support import ScriptedNode, fedavg, ready_node, update_for
from tests.edge_node.test_commands import Observer
from tests.support import wait_for

pytestmark = pytest.mark.broker

CONFIG = """
[aggregator]
registry = "{registry}"
architecture = "dense_ae"
window = 20
channels = 3
model_params = {{hidden = [32, 8]}}
min_nodes = 3
rounds = 1
deadline_s = 300
round_interval_s = 0.1
"""


def _aggregator(broker: RunningBroker, topics: TopicRoot, config: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "fedge.cli", "aggregator", "--config", str(config),
        "--broker", str(broker.url), "--mqtt-protocol", broker.protocol,
        "--topic-prefix", topics.prefix, "--until-done",
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _round_updates(path: Path, round_id: int) -> int:
    with Registry(path) as registry:
        return len(registry.round_updates(round_id))


def test_sigkill_mid_round_loses_nothing_and_counts_nothing_twice(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """Two real nodes deliver, the aggregator is SIGKILLed, the third update and a duplicate
    of the first arrive while it is down; after a restart round 1 closes on exactly the three
    updates, and version 1 is their FedAvg."""
    registry_path = tmp_path / "registry.db"
    config = tmp_path / "fedge.toml"
    config.write_text(CONFIG.format(registry=registry_path), encoding="utf-8")
    observer = Observer(broker, topic_root)
    feeder = MqttClient(broker.url, MqttOptions(protocol=broker.protocol)).connect()
    scripted = ScriptedNode(broker, topic_root, "n3")
    first = _aggregator(broker, topic_root, config)
    second: subprocess.Popen[bytes] | None = None
    nodes: list[EdgeNode] = []
    try:
        base = scripted.models.wait(1, timeout=60)[0]
        for name in ("n1", "n2"):
            nodes.append(ready_node(broker, topic_root, tmp_path / name, name, feeder))
        scripted.announce(base.version)  # the third node: the round can open
        assert scripted.commands.wait(1, timeout=30), "n3 was never asked to train"
        assert wait_for(lambda: _round_updates(registry_path, 1) == 2, 60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)

        delivered = observer.updates.wait(2)
        assert sorted(u.node for u in delivered) == ["n1", "n2"]
        mine = update_for("n3", base, round_id=1, samples=300, seed=3)
        scripted.send(mine)  # while the aggregator is down: queued in its session
        scripted.send(mine)
        n1_topic = str(topic_root.node("n1", NodeChannel.UPDATES))
        scripted.publish(n1_topic, encode(delivered[0]))  # a redelivery of a recorded update
        second = _aggregator(broker, topic_root, config)
        output, _ = second.communicate(timeout=120)
    finally:
        for node in nodes:
            node.stop()
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
        scripted.close()
        feeder.close()
        observer.client.close()

    assert second.returncode == 0, output.decode(errors="replace")
    with Registry(registry_path) as registry:
        closed = registry.get_round(1)
        result = registry.get_version("default", 1)
        ledger = registry.ledger("default")
    assert closed is not None
    assert closed.state == "closed"
    assert closed.result_version == 1
    assert result is not None
    assert sorted(r.node for r in ledger if r.status == "applied") == ["n1", "n2", "n3"]
    assert len(ledger) == 3  # nothing recorded twice
    expected = fedavg(base, [*delivered, mine])
    for name, array in result.arrays.items():
        np.testing.assert_allclose(array, expected[name], rtol=1e-5, atol=1e-6)
