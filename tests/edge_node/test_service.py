"""The edge node against a real Mosquitto: presence, detection, hot swap, bad input, restart."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest

from edge_node.service import EdgeNode
from fedge.broker import RunningBroker
from fedge.mqtt import MqttClient, MqttOptions
from fedge.topics import NodeChannel, TopicRoot
from fedge.transport import RejectLog, decoding
from fedge.wire import Event, GlobalModel, NodeStatus, SensorFrame, encode
from tests.edge_node.service_support import (
    CHANNELS,
    ROWS,
    WINDOW,
    ScoredLog,
    frames,
    make_node,
    trained_model,
)
from tests.support import Collector, wait_for

pytestmark = pytest.mark.broker


class Harness:
    """A publisher/observer client plus helpers to drive one node through the broker."""

    def __init__(self, broker: RunningBroker, topics: TopicRoot) -> None:
        self.broker, self.topics = broker, topics
        self.client = MqttClient(broker.url, MqttOptions(protocol=broker.protocol)).connect()
        self.events: Collector[Event] = Collector()
        self.statuses: Collector[NodeStatus] = Collector()
        rejects = RejectLog()
        self.client.subscribe(
            topics.node_filter(NodeChannel.EVENTS),
            decoding(Event, lambda t, e: self.events(e), rejects),
        )
        self.client.subscribe(
            topics.node_filter(NodeChannel.STATUS),
            decoding(NodeStatus, lambda t, s: self.statuses(s), rejects),
        )

    def send(self, node: str, stream: Iterator[SensorFrame]) -> None:
        for frame in stream:
            self.client.publish(str(self.topics.sensors(node, frame.device)), encode(frame))
        self.client.flush(10)

    def publish_model(self, model: GlobalModel | bytes) -> None:
        payload = model if isinstance(model, bytes) else encode(model)
        self.client.publish(str(self.topics.model("default")), payload, retain=True)
        self.client.flush(10)

    def anomalies(self, state: str) -> list[Event]:
        return [e for e in self.events.items if e.type == "anomaly" and e.data["state"] == state]


@pytest.fixture
def harness(broker: RunningBroker, topic_root: TopicRoot) -> Iterator[Harness]:
    h = Harness(broker, topic_root)
    yield h
    h.client.close()


def _node(h: Harness, state_dir: Path, scored: ScoredLog | None = None) -> EdgeNode:
    node = make_node(h.broker.url, h.broker.protocol, h.topics, state_dir, scored=scored)
    node.start()
    assert node.client.wait_ready(10)
    return node


def _drained(node: EdgeNode, windows: int) -> bool:
    stats = node.engine.stats
    return wait_for(
        lambda: (
            stats.windows_scored + stats.windows_calibration + stats.windows_unscored >= windows
        ),
        timeout=20,
    )


def _expected_windows(frame_count: int) -> int:
    return frame_count * ROWS - WINDOW + 1


def test_birth_is_retained_and_the_will_announces_death(harness: Harness, tmp_path: Path) -> None:
    """A node announces itself online (retained); killed, its Will says offline."""
    node = _node(harness, tmp_path / "n1")

    online = harness.statuses.wait(1)[0]
    node.client.abort()  # vanish without DISCONNECT, as on power loss
    node.engine.stop()
    offline = wait_for(lambda: any(not s.online for s in harness.statuses.items))

    assert (online.node, online.online, online.model_version) == ("n1", True, None)
    assert "inference" in online.capabilities
    assert offline


def test_node_without_model_waits_then_scores(harness: Harness, tmp_path: Path) -> None:
    """With no model the node keeps running and counts unscored windows; a model starts scoring."""
    node = _node(harness, tmp_path / "n1")
    try:
        harness.send("n1", frames("pump", 60))
        assert _drained(node, _expected_windows(60))
        unscored = node.engine.stats.windows_unscored

        harness.publish_model(trained_model())
        assert wait_for(lambda: node.engine.model is not None)
        harness.send("n1", frames("pump", 10, first_seq=60))
        assert wait_for(lambda: node.engine.stats.windows_scored == 10 * ROWS)
    finally:
        node.stop()
    assert unscored == _expected_windows(60) - node.engine.stats.windows_calibration
    assert unscored > 0


def test_injected_spikes_raise_events_at_the_right_places(harness: Harness, tmp_path: Path) -> None:
    """Spikes injected in a replayed stream produce anomaly events that start at the spike."""
    spikes = frozenset({1500, 2200})
    node = _node(harness, tmp_path / "n1")
    try:
        harness.publish_model(trained_model())
        assert wait_for(lambda: node.engine.model is not None)
        harness.send("n1", frames("pump", 300, spikes=spikes))
        assert _drained(node, _expected_windows(300))
        assert wait_for(lambda: len(harness.anomalies("closed")) >= len(spikes))
    finally:
        node.stop()

    starts = sorted(e.data["start"] for e in harness.anomalies("open"))  # type: ignore[type-var]
    expected = sorted(1000.0 + s for s in spikes)
    assert len(starts) == len(spikes), starts
    for start, truth in zip(starts, expected, strict=True):
        assert isinstance(start, float)
        assert truth <= start < truth + WINDOW  # detected while the spike is inside the window
    closed = harness.anomalies("closed")[0]
    assert closed.data["top_channels"][0] == CHANNELS[0]  # type: ignore[index]
    assert closed.data["model_version"] == 1


def test_global_model_swap_mid_stream_loses_and_repeats_no_window(
    harness: Harness, tmp_path: Path
) -> None:
    """A new global model published mid-stream takes over; every window is scored exactly once."""
    scored = ScoredLog()
    node = _node(harness, tmp_path / "n1", scored)
    try:
        harness.publish_model(trained_model(1))
        assert wait_for(lambda: node.engine.model is not None)
        harness.send("n1", frames("pump", 100))
        harness.publish_model(trained_model(2, seed=1))
        harness.send("n1", frames("pump", 100, first_seq=100))
        assert _drained(node, _expected_windows(200))
        assert wait_for(lambda: node.engine.stats.swaps == 2)
        harness.send("n1", frames("pump", 5, first_seq=200))  # lets the engine pick v2 up
        assert _drained(node, _expected_windows(205))
    finally:
        node.stop()

    first = WINDOW - 1 + node.engine.stats.windows_calibration
    indices = scored.indices("pump")
    versions = scored.versions("pump")
    assert indices == list(range(first, 205 * ROWS))
    switch = versions.index(2)
    assert set(versions[:switch]) == {1}
    assert set(versions[switch:]) == {2}


def test_corrupt_or_mismatched_model_is_refused_and_scoring_continues(
    harness: Harness, tmp_path: Path
) -> None:
    """Garbage ONNX, a wrong window shape and a garbage payload are refused; v1 keeps scoring."""
    node = _node(harness, tmp_path / "n1")
    good = trained_model()
    try:
        harness.publish_model(good)
        assert wait_for(lambda: node.engine.model is not None)
        harness.send("n1", frames("pump", 60))
        garbage_onnx = GlobalModel(
            "default", 2, good.arrays, b"\x08\x07not-onnx", good.architecture
        )
        wrong_shape = GlobalModel(
            "default", 3, good.arrays, good.onnx, {**good.architecture, "window": WINDOW * 2}
        )
        for bad in (garbage_onnx, wrong_shape):
            harness.publish_model(bad)
        harness.publish_model(b"\x00\x01 not even msgpack")
        assert wait_for(
            lambda: len([e for e in harness.events.items if e.type == "model_rejected"]) == 2
        )
        harness.send("n1", frames("pump", 30, first_seq=60))
        assert _drained(node, _expected_windows(90))
    finally:
        node.stop()

    model = node.engine.model
    assert model is not None
    assert model.version == 1
    assert node.engine.stats.windows_scored > 0
    reasons = " | ".join(node.rejects.by_reason)
    assert "onnxruntime cannot load it" in reasons
    assert "windows of 40 x 3" in reasons
    assert "payload" in reasons


def test_hostile_frames_are_counted_and_scoring_continues(harness: Harness, tmp_path: Path) -> None:
    """NaN values, wrong channel sets and garbage never stop the node; each is counted."""
    node = _node(harness, tmp_path / "n1")
    topic = str(harness.topics.sensors("n1", "pump"))
    good = list(frames("pump", 60))
    nan_frame = good[5].to_fields() | {"kind": "sensor_frame", "v": 1}
    nan_values = np.array(good[5].values)
    nan_values[0, 0] = math.nan
    nan_frame["values"] = {"dtype": "<f4", "shape": [ROWS, 3], "data": nan_values.tobytes()}
    body = msgpack.packb(nan_frame, use_bin_type=True)
    nan_payload = body + zlib.crc32(body).to_bytes(4, "little")
    wrong_channels = SensorFrame(
        "pump", 99, ("a", "b"), np.zeros((ROWS, 2), np.float32), t0=0.0, period=1.0
    )
    try:
        harness.publish_model(trained_model())
        assert wait_for(lambda: node.engine.model is not None)
        for frame in good:
            harness.client.publish(topic, encode(frame))
            harness.client.publish(topic, nan_payload)
            harness.client.publish(topic, b"\xc1garbage")
        harness.client.publish(topic, encode(wrong_channels))
        harness.client.flush(10)
        assert _drained(node, _expected_windows(60))
        assert wait_for(lambda: node.rejects.total >= 2 * 60 + 1)
    finally:
        node.stop()

    reasons = " | ".join(node.rejects.by_reason)
    assert "NaN" in reasons
    assert "do not match the node's" in reasons
    assert node.client.stats.handler_errors == 0


def test_restart_resumes_from_the_stored_model(harness: Harness, tmp_path: Path) -> None:
    """A restarted node scores with its stored model and calibration before any broker contact."""
    state = tmp_path / "n1"
    first = _node(harness, state)
    try:
        harness.publish_model(trained_model())
        assert wait_for(lambda: first.engine.model is not None)
        harness.send("n1", frames("pump", 60))
        assert _drained(first, _expected_windows(60))
    finally:
        first.stop()
    harness.client.publish(str(harness.topics.model("default")), b"", retain=True)  # forget it
    harness.client.flush(10)

    scored = ScoredLog()
    second = make_node(
        harness.broker.url, harness.broker.protocol, harness.topics, state, scored=scored
    )
    model = second.engine.model  # before start(): no broker contact yet
    second.start()
    try:
        harness.send("n1", frames("pump", 10, first_seq=60))
        assert wait_for(lambda: second.engine.stats.windows_scored > 0)
    finally:
        second.stop()

    assert model is not None
    assert model.version == 1
    assert model.threshold is not None
    assert second.engine.stats.windows_calibration == 0


def test_edge_process_never_imports_torch(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """Running a node end to end (connect, install a model, score) leaves torch unimported."""
    model_path = tmp_path / "model.bin"
    model_path.write_bytes(encode(trained_model()))
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from fedge.topics import TopicRoot
        from fedge.wire import GlobalModel, decode
        from tests.edge_node.service_support import make_node, frames
        topics = TopicRoot({topic_root.prefix!r})
        node = make_node(
            __import__("fedge.endpoint").endpoint.BrokerUrl.parse({str(broker.url)!r}),
            {broker.protocol!r}, topics, Path({str(tmp_path / "state")!r}),
        )
        node.start()
        node._offer_global(decode(Path({str(model_path)!r}).read_bytes(), GlobalModel))
        deadline = time.time() + 20
        while node.engine.model is None and time.time() < deadline:
            time.sleep(0.01)  # scoring needs the model: without it windows go unscored
        for frame in frames("pump", 60):
            node.engine.submit(frame)
        deadline = time.time() + 20
        while node.engine.stats.windows_scored == 0 and time.time() < deadline:
            time.sleep(0.05)
        node.stop()
        loaded = sorted(m for m in sys.modules if m.startswith("torch"))
        print(node.engine.stats.windows_scored, loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )

    assert result.returncode == 0, result.stderr
    scored, torch_modules = result.stdout.strip().split(" ", 1)
    assert int(scored) > 0
    assert torch_modules == "[]"
