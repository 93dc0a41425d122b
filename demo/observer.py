"""The demo's own MQTT client: it listens to every fedge topic and feeds the ``Tally``.

It only subscribes; it never publishes, so the platform runs exactly as it would without it.
Payloads are decoded with the wire codec (a payload that does not decode is counted in
``rejects`` and logged once, as in every other fedge process), and the payload size goes to
the tally with the decoded message. Sensor frames are subscribed at QoS 0: they are the bulk of
the traffic, the broker is on loopback, and a missed frame would only make the raw-data figure
a little low, never wrong in kind.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from demo.tally import Tally
from fedge.endpoint import BrokerUrl
from fedge.errors import TopicError, WireError
from fedge.mqtt import MqttClient, MqttOptions, Protocol
from fedge.topics import LabelTopic, ModelTopic, NodeChannel, NodeTopic, SensorTopic, TopicRoot
from fedge.transport import Message, RejectLog
from fedge.wire import (
    Command,
    Event,
    GlobalModel,
    LabelFrame,
    ModelUpdate,
    NodeStatus,
    SensorFrame,
    decode,
)

log = logging.getLogger(__name__)


class Observer:
    """Subscribes to sensors, labels, node channels and global models; counts into ``tally``."""

    def __init__(
        self,
        url: BrokerUrl,
        protocol: Protocol,
        topics: TopicRoot,
        tally: Tally,
        clock: Callable[[], float],
    ) -> None:
        self.topics = topics
        self.tally = tally
        self.clock = clock
        self.rejects = RejectLog(log)
        options = MqttOptions(client_id=f"fedge-demo-{uuid.uuid4().hex[:8]}", protocol=protocol)
        self.client = MqttClient(url, options)

    def start(self, timeout: float = 10.0) -> None:
        """Subscribe (kept across reconnects) and connect; return once subscriptions hold."""
        topics = self.topics
        self.client.subscribe(topics.sensors_filter(), self._on_message, qos=0)
        self.client.subscribe(topics.labels_filter(), self._on_message, qos=1)
        for channel in NodeChannel:
            self.client.subscribe(topics.node_filter(channel), self._on_message, qos=1)
        self.client.subscribe(topics.models_filter(), self._on_message, qos=1)
        self.client.start()
        if not self.client.wait_ready(timeout):
            raise TimeoutError(f"the demo could not subscribe at {self.client.url} in {timeout}s")

    def close(self) -> None:
        self.client.close()

    def _on_message(self, message: Message) -> None:
        """Route one message by topic; a foreign topic or bad payload is counted, not raised."""
        at = self.clock()
        size = len(message.payload)
        try:
            topic = self.topics.parse(message.topic)
            match topic:
                case SensorTopic(node=node):
                    frame = decode(message.payload, SensorFrame)
                    self.tally.sensor(node, frame.rows, len(frame.channels), size)
                case LabelTopic(node=node):
                    self.tally.label(node, decode(message.payload, LabelFrame), at)
                case NodeTopic(node=node, channel=channel):
                    self._node_message(node, channel, message.payload, size, at)
                case ModelTopic():
                    self.tally.global_model(decode(message.payload, GlobalModel), size, at)
        except WireError as exc:
            self.rejects.record_wire_error(message.topic, exc)
        except TopicError as exc:
            self.rejects.record(message.topic, str(exc))

    def _node_message(
        self, node: str, channel: NodeChannel, payload: bytes, size: int, at: float
    ) -> None:
        tally = self.tally
        if channel is NodeChannel.STATUS:
            if payload:  # an empty retained payload only clears the topic
                tally.status(node, decode(payload, NodeStatus), size, at)
        elif channel is NodeChannel.EVENTS:
            tally.event(node, decode(payload, Event), size, at)
        elif channel is NodeChannel.UPDATES:
            tally.update(node, decode(payload, ModelUpdate), size, at)
        else:
            tally.command(node, decode(payload, Command), size, at)


def monotonic_clock() -> Callable[[], float]:
    """Seconds since now: the demo's timeline starts when it does."""
    start = time.monotonic()
    return lambda: time.monotonic() - start
