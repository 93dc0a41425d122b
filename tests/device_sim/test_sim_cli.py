"""`fedge sim` against a real Mosquitto: exactly the generator's frames arrive, labels too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from device_sim.behaviour import Anomaly, Kind
from device_sim.fleet import Fleet, FleetSpec
from device_sim.ground_truth import read_events
from device_sim.publish import FramePublisher
from device_sim.scenario import parse_inject
from device_sim.sim_cli import simulate
from fedge.broker import RunningBroker
from fedge.mqtt import MqttClient, MqttOptions
from fedge.topics import SensorTopic, TopicRoot
from fedge.transport import RejectLog, decoding
from fedge.wire import LabelFrame, SensorFrame
from tests.support import Collector

START = 1_700_000_000.0
Received = tuple[str, SensorFrame | LabelFrame]


def _fedge(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedge.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _client(broker: RunningBroker) -> MqttClient:
    return MqttClient(broker.url, MqttOptions(protocol=broker.protocol))


def _listen(client: MqttClient, root: TopicRoot, got: Collector[Received]) -> RejectLog:
    """Collect every sensor and label frame under ``root`` as (node, frame)."""
    rejects = RejectLog()

    def keep(topic: str, frame: SensorFrame | LabelFrame) -> None:
        parsed = root.parse(topic)
        assert isinstance(parsed, SensorTopic) == isinstance(frame, SensorFrame)
        got((topic.split("/")[-2], frame))

    client.subscribe(root.sensors_filter(), decoding(SensorFrame, keep, rejects), qos=1)
    client.subscribe(root.labels_filter(), decoding(LabelFrame, keep, rejects), qos=1)
    return rejects


def _expected(spec: FleetSpec) -> list[Received]:
    out: list[Received] = []
    for node, frame, labels in Fleet(spec).frames():
        out.append((node, frame))
        if labels is not None:
            out.append((node, labels))
    return out


def _per_device(
    items: list[Received],
) -> dict[tuple[str, str, str], list[SensorFrame | LabelFrame]]:
    """Frames grouped by (node, device, kind) in arrival order: MQTT orders per topic only."""
    out: dict[tuple[str, str, str], list[SensorFrame | LabelFrame]] = {}
    for node, frame in items:
        out.setdefault((node, frame.device, frame.KIND), []).append(frame)
    return out


def test_seeded_fleet_arrives_exactly_through_mosquitto(
    broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """2 nodes x 2 pumps at QoS 1: every frame arrives once, in order, equal to the generator's."""
    spec = FleetSpec(
        nodes=2,
        devices=2,
        rate=1000.0,
        frame_size=50,
        readings=5000,
        seed=3,
        start=START,
        behaviours=(Anomaly(Kind.CAVITATION, at_s=1.0, for_s=0.5, target="node-1/pump-0"),),
    )
    expected = _expected(spec)
    got: Collector[Received] = Collector()
    with _client(broker) as sub, _client(broker) as pub:
        rejects = _listen(sub, topic_root, got)
        publisher = FramePublisher(pub, topic_root, qos=1)

        simulate(Fleet(spec), publisher)
        assert publisher.flush(20)
        received = got.wait(len(expected), timeout=20)

    assert len(received) == len(expected) == 400 + 10
    assert _per_device(received) == _per_device(expected)
    labels = _per_device(received)["node-1", "pump-0", LabelFrame.KIND]
    assert [frame.seq for frame in labels] == list(range(20, 30))
    assert rejects.total == 0


def test_sim_command_publishes_the_seeded_fleet_and_writes_ground_truth(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """`fedge sim` as a subprocess: exit 0, a final progress line, the expected frames, labels."""
    truth = tmp_path / "truth.jsonl"
    spike = "spike,at=1s,device=node-0/pump-1,channel=current,magnitude=2"
    spec = FleetSpec(
        nodes=2,
        devices=2,
        rate=1000.0,
        frame_size=50,
        readings=2000,
        seed=9,
        start=START,
        behaviours=(parse_inject(spike),),
    )
    expected = _expected(spec)
    got: Collector[Received] = Collector()
    with _client(broker) as sub:
        _listen(sub, topic_root, got)

        result = _fedge(
            "sim",
            "--broker",
            str(broker.url),
            "--topic-prefix",
            topic_root.prefix,
            *("--nodes", "2", "--devices", "2", "--rate", "1000", "--frame-size", "50"),
            *("--duration", "2s", "--seed", "9", "--start", str(START), "--fast"),
            *("--inject", spike, "--labels-file", str(truth)),
        )
        received = got.wait(len(expected), timeout=20)

    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("fedge sim: ")]
    assert progress[-1].startswith("fedge sim: 8,000 readings / 8,000 (100.0 %)")
    assert (
        "published 160 frames (8,000 readings) and 1 label frame from 4 pumps on 2 nodes"
        in result.stdout
    )
    assert _per_device(received) == _per_device(expected)
    events = read_events(truth)
    assert [(e.node, e.device, e.kind, e.start_index) for e in events] == [
        ("node-0", "pump-1", "spike", 1000)
    ]
    assert json.loads(truth.read_text())["channel"] == "current"


def test_sim_reads_its_settings_from_the_config_file(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """A [sim] table sets the fleet; flags override it."""
    config = tmp_path / "fedge.toml"
    config.write_text(
        f'[mqtt]\nbroker = "{broker.url}"\ntopic_prefix = "{topic_root.prefix}"\n'
        '[sim]\nnodes = 3\ndevices = 1\nrate = 100\nduration = "1s"\nqos = 0\nspeed = "fast"\n'
        'inject = ["dropout,at=0.5s,for=0.1s"]\n'
    )

    result = _fedge("sim", "--config", str(config), "--nodes", "2")

    assert result.returncode == 0, result.stderr
    assert "published 2 frames (200 readings) and 2 label frames" in result.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Bad flags, specs, scenario files and config keys: one stderr line, exit 2, no traceback."""
    config = tmp_path / "fedge.toml"
    config.write_text("[sim]\nnode = 2\n")
    cases = {
        ("--rate", "0"): "rate: 0 Hz is outside 0.1-10000 Hz",
        ("--nodes", "two"): "nodes: 'two' is not an integer",
        ("--inject", "bogus,at=1s"): "'bogus' is not a behaviour",
        ("--scenario", str(tmp_path / "none.toml")): "file does not exist",
        ("--config", str(config)): "sim.node: unknown key",
        ("--labels-file", str(tmp_path / "truth.txt")): "must end in .csv or .jsonl",
        ("--inject", "spike,at=1s,device=node-5/*"): "'node-5/*' selects no device",
    }

    for argv, fragment in cases.items():
        result = _fedge("sim", "--broker", "mqtt://127.0.0.1:1", *argv)

        assert result.returncode == 2, (argv, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert fragment in result.stderr
