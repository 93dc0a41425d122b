"""`fedge edge`: configuration from flags and the [edge] table, and a real run to SIGTERM."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge_node.cli import EdgeCommand, edge_config
from fedge.broker import RunningBroker
from fedge.cli import add_common_arguments
from fedge.errors import ConfigError
from fedge.mqtt import MqttClient, MqttOptions
from fedge.topics import NodeChannel, TopicRoot
from fedge.transport import RejectLog, decoding
from fedge.wire import NodeStatus
from tests.support import Collector


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    EdgeCommand().configure(parser)
    return parser.parse_args(list(argv))


def test_flags_override_the_edge_table() -> None:
    """A flag wins over the [edge] table; the table fills in the rest."""
    table = {"node": "from-file", "window": 30, "channels": ["a", "b"], "trigger_fraction": 0.3}

    config = edge_config(_args("--node", "n7", "--stride", "5"), table)

    assert (config.node, config.engine.window.window, config.engine.window.stride) == ("n7", 30, 5)
    assert config.channels == ("a", "b")
    assert config.learning is not None
    assert config.learning.trigger.fraction == 0.3


def test_no_learning_means_inference_only() -> None:
    """--no-learning (or learning = false) leaves the node without a learner."""
    assert edge_config(_args("--node", "n1", "--no-learning"), {}).learning is None
    assert edge_config(_args("--node", "n1"), {"learning": False}).learning is None


def test_trigger_and_threshold_margin_are_configurable() -> None:
    """--no-trigger (or trigger = false) keeps rounds but drops drift fine-tuning; --margin
    sets the threshold's headroom over the calibration quantile."""
    config = edge_config(_args("--node", "n1", "--no-trigger", "--margin", "0.5"), {})
    assert config.learning is not None
    assert not config.learning.trigger.enabled
    assert config.engine.detector.margin == 0.5
    from_table = edge_config(_args("--node", "n1"), {"trigger": False, "quantile": 0.98})
    assert from_table.learning is not None
    assert not from_table.learning.trigger.enabled
    assert from_table.engine.detector.quantile == 0.98
    assert edge_config(_args("--node", "n1"), {}).learning.trigger.enabled  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("argv", "table", "message"),
    [
        ((), {}, "give the node id"),
        (("--node", "a/b"), {}, "node id"),
        (("--node", "n1"), {"trigger_sustain_s": 60}, "must exceed window_s"),
        (("--node", "n1", "--window", "1"), {}, "window"),
    ],
)
def test_bad_configuration_is_a_config_error(
    argv: tuple[str, ...], table: dict[str, object], message: str
) -> None:
    """Every bad value ends in an error naming it."""
    with pytest.raises((ConfigError, ValueError), match=message):
        edge_config(_args(*argv), table)


@pytest.mark.broker
def test_fedge_edge_runs_announces_and_stops_cleanly(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """`fedge edge` connects, publishes its retained birth, and exits 0 on SIGTERM."""
    statuses: Collector[NodeStatus] = Collector()
    watcher = MqttClient(broker.url, MqttOptions(protocol=broker.protocol)).connect()
    watcher.subscribe(
        topic_root.node_filter(NodeChannel.STATUS),
        decoding(NodeStatus, lambda t, s: statuses(s), RejectLog()),
    )
    argv = [
        sys.executable, "-m", "fedge.cli", "edge", "--node", "n1", "--channels", "a,b,c",
        "--broker", str(broker.url), "--mqtt-protocol", broker.protocol,
        "--topic-prefix", topic_root.prefix, "--state-dir", str(tmp_path / "n1"),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        online = statuses.wait(1, timeout=20)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        watcher.close()

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert (online[0].node, online[0].online) == ("n1", True)
    assert set(online[0].capabilities) == {"inference", "train"}
    assert any(not s.online for s in statuses.items)
