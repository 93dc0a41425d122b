"""FramePublisher.send_batch: the same messages, in the same order, as one send per frame."""

from __future__ import annotations

import numpy as np

from device_sim.publish import FramePublisher
from fedge.topics import TopicRoot
from fedge.transport import InMemoryHub, Message
from fedge.wire import LabelFrame, SensorFrame
from tests.support import Collector

CHANNELS = ("a", "b")


def _items() -> list[tuple[str, SensorFrame, LabelFrame | None]]:
    items: list[tuple[str, SensorFrame, LabelFrame | None]] = []
    for seq in range(3):
        for node in ("node-0", "node-1"):
            values = np.full((4, 2), seq, np.float32)
            frame = SensorFrame("pump-0", seq, CHANNELS, values, t0=float(seq), period=0.25)
            labels = None
            if seq == 1:
                flags = np.ones((4, 1), np.uint8)
                labels = LabelFrame("pump-0", seq, ("anomaly",), flags, t0=float(seq), period=0.25)
            items.append((node, frame, labels))
    return items


def _published(send: str) -> tuple[list[Message], FramePublisher]:
    hub = InMemoryHub()
    got: Collector[Message] = Collector()
    hub.connect().subscribe("#", got)
    publisher = FramePublisher(hub.connect(), TopicRoot(), qos=0)
    if send == "batch":
        publisher.send_batch(_items())
    else:
        for node, frame, labels in _items():
            publisher.send(node, frame, labels)
    return got.items, publisher


def test_send_batch_publishes_what_send_would() -> None:
    """Topics, payloads, QoS, order and counters match frame-by-frame send."""
    one_by_one, single = _published("send")

    batched, batch = _published("batch")

    assert batched == one_by_one
    assert [m.topic for m in batched[2:5]] == [
        "fedge/v1/sensors/node-0/pump-0",
        "fedge/v1/labels/node-0/pump-0",
        "fedge/v1/sensors/node-1/pump-0",
    ]
    assert [m.qos for m in batched[2:4]] == [0, 1]
    assert batch.stats == single.stats
    assert (batch.stats.frames, batch.stats.readings, batch.stats.label_frames) == (6, 24, 2)
