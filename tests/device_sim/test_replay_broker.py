"""Replay and record through a real Mosquitto: every SKAB row and label, bit-exact round trips."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_sim.csvio import read_recording
from device_sim.publish import FramePublisher, Pacer
from device_sim.recorder import Recorder
from device_sim.replay import play, schedule
from device_sim.sources import NodeRule, assign, find_files
from fedge.broker import RunningBroker
from fedge.mqtt import MqttClient, MqttOptions
from fedge.topics import TopicRoot
from fedge.transport import RejectLog, decoding
from fedge.wire import LabelFrame, SensorFrame
from tests.device_sim.recordings import skab_dir, skab_oracle, tricky_float32
from tests.support import Collector, wait_for


def _client(broker: RunningBroker) -> MqttClient:
    return MqttClient(broker.url, MqttOptions(protocol=broker.protocol)).connect()


def test_replaying_skab_valve1_0_delivers_every_row_and_label(
    broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """`fedge replay valve1/0.csv --fast` delivers all 1147 rows and labels, values as float32."""
    path = skab_dir() / "valve1" / "0.csv"
    times, values, labels = skab_oracle(path)
    sensors: Collector[SensorFrame] = Collector()
    truths: Collector[LabelFrame] = Collector()
    rejects = RejectLog()
    listener = _client(broker)
    try:
        listener.subscribe(
            topic_root.sensors_filter(), decoding(SensorFrame, lambda t, f: sensors(f), rejects)
        )
        listener.subscribe(
            topic_root.labels_filter(), decoding(LabelFrame, lambda t, f: truths(f), rejects)
        )

        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "fedge.cli",
                "replay",
                str(path),
                "--fast",
                "--no-progress",
                "--broker",
                str(broker.url),
                "--mqtt-protocol",
                broker.protocol,
                "--topic-prefix",
                topic_root.prefix,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        frames = sorted(sensors.wait(115), key=lambda f: f.seq)
        label_frames = sorted(truths.wait(115), key=lambda f: f.seq)
    finally:
        listener.close()

    assert result.returncode == 0, result.stderr
    assert "replayed 1,147 rows in 115 frames and 115 label frames" in result.stdout
    assert [f.seq for f in frames] == list(range(115))
    assert [f.seq for f in label_frames] == list(range(115))
    assert all(f.device == "0" for f in frames)
    got_values = np.concatenate([f.values for f in frames])
    assert np.array_equal(got_values.view(np.uint32), values.view(np.uint32))
    assert np.array_equal(np.concatenate([f.times() for f in frames]), times)
    assert np.array_equal(np.concatenate([f.values for f in label_frames]), labels)
    label_times = [f.timestamps for f in label_frames if f.timestamps is not None]
    assert np.array_equal(np.concatenate(label_times), times)
    assert rejects.total == 0


def _device_frames(device: str, seed: int) -> list[SensorFrame]:
    """Irregular times, tricky float32 values and uneven frame sizes from one device."""
    rng = np.random.default_rng(seed)
    values = tricky_float32(300, 3, seed)
    times = 1.7e9 + seed + np.cumsum(rng.exponential(0.37, 300))
    times[10:12] = times[9]  # repeated timestamps are allowed, as long as time never goes back
    bounds = [0, 1, 8, 50, 51, 120, 300]
    return [
        SensorFrame(device, i, ("x", "y", "z"), values[a:b], t0=times[a], timestamps=times[a:b])
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]


@dataclass
class _Session:
    """A recorder subscribed through its own client, expecting a number of frames."""

    recorder: Recorder
    client: MqttClient
    expected: int

    def finish(self) -> None:
        assert wait_for(lambda: self.recorder.stats.frames >= self.expected, 20)
        self.client.close()
        self.recorder.close()


def _record(broker: RunningBroker, root: TopicRoot, directory: Path, frames: int) -> _Session:
    recorder = Recorder(directory, root)
    client = _client(broker)
    client.subscribe(root.sensors_filter(), recorder.handler())
    return _Session(recorder, client, frames)


def test_record_replay_record_round_trips_bit_exactly(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """Recorded frames replay as the same node/device rows, float32 bits and float64 times."""
    devices = {("n1", "pump-1"): 1, ("n1", "fan"): 2, ("n2", "pump-1"): 3}
    sent = {key: _device_frames(key[1], seed) for key, seed in devices.items()}
    first = _record(broker, topic_root, tmp_path / "a", 18)
    publisher_client = _client(broker)
    publisher = FramePublisher(publisher_client, topic_root)
    for (node, _), frames in sent.items():
        for frame in frames:
            publisher.send(node, frame)
    publisher.flush(10)
    first.finish()

    second = _record(broker, topic_root, tmp_path / "b", 90)
    files = find_files([tmp_path / "a"])
    sources = assign(files, [read_recording(f.path) for f in files], NodeRule.parse("auto"))
    play(schedule(sources, 10), publisher, Pacer(math.inf))
    publisher.flush(10)
    publisher_client.close()
    second.finish()

    for (node, device), frames in sent.items():
        recorded = read_recording(tmp_path / "a" / node / f"{device}.csv")
        values = np.concatenate([f.values for f in frames])
        times = np.concatenate([f.times() for f in frames])
        assert np.array_equal(recorded.values.view(np.uint32), values.view(np.uint32))
        assert np.array_equal(recorded.timestamps.view(np.uint64), times.view(np.uint64))
        again = tmp_path / "b" / node / f"{device}.csv"
        assert again.read_bytes() == (tmp_path / "a" / node / f"{device}.csv").read_bytes()
    assert sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.csv")) == [
        Path("n1/fan.csv"),
        Path("n1/pump-1.csv"),
        Path("n2/pump-1.csv"),
    ]
