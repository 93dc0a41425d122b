"""``fedge check``: prove the data path works end to end, in one command.

Connects to the broker (``--broker``), or starts a temporary one when none is given, then
publishes sensor frames at QoS 1 on a private topic root, receives and decodes them, sends one
hostile payload to show it is rejected cleanly, and prints what it saw. Exit 0 means a fedge
component can talk through this broker.
"""

from __future__ import annotations

import argparse
import time
import uuid

import numpy as np

from fedge.broker import RunningBroker, start_broker
from fedge.config import load_file, mqtt_settings
from fedge.errors import TransportError
from fedge.mqtt import MqttClient
from fedge.topics import TopicRoot
from fedge.transport import RejectLog, decoding
from fedge.wire import SensorFrame, encode


class CheckCommand:
    name = "check"
    help = "publish/subscribe smoke check through a broker (starts one if --broker is not given)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--frames", type=int, default=100, help="frames to send (default 100)")
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")

    def run(self, args: argparse.Namespace) -> int:
        broker: RunningBroker | None = None
        if args.broker is None:
            broker = start_broker()
            args.broker = str(broker.url)
            args.mqtt_protocol = args.mqtt_protocol or broker.protocol
            print(f"started a temporary {broker.kind} broker at {broker.url}")
        try:
            return self._check(args)
        finally:
            if broker is not None:
                broker.stop()

    def _check(self, args: argparse.Namespace) -> int:
        settings = mqtt_settings(args, load_file(args.config))
        root = TopicRoot(f"check-{uuid.uuid4().hex[:8]}/{settings.topics.prefix}")
        topic = str(root.sensors("check-node", "check-device"))
        channels = ("vibration_rms", "current", "pressure", "temperature")
        received: list[SensorFrame] = []
        rejects = RejectLog()
        sub = MqttClient(
            settings.url, settings.with_client(f"fedge-check-sub-{uuid.uuid4().hex[:6]}")
        )
        pub = MqttClient(
            settings.url, settings.with_client(f"fedge-check-pub-{uuid.uuid4().hex[:6]}")
        )
        sub.connect(args.timeout)
        try:
            pub.connect(args.timeout)
            sub.subscribe(topic, decoding(SensorFrame, lambda t, f: received.append(f), rejects))
            start = time.perf_counter()
            values = np.zeros((50, len(channels)), np.float32)
            for seq in range(args.frames):
                frame = SensorFrame(
                    "check-device", seq, channels, values + seq, t0=time.time(), period=0.02
                )
                pub.publish(topic, encode(frame))
            pub.publish(topic, b"\x00not a fedge message")
            pub.flush(args.timeout)
            deadline = time.monotonic() + args.timeout
            while (
                len(received) < args.frames or rejects.total < 1
            ) and time.monotonic() < deadline:
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
        finally:
            pub.close()
            sub.close()
        in_order = [f.seq for f in received] == list(range(args.frames))
        print(
            f"broker {settings.url} (MQTT {settings.options.protocol}): "
            f"{len(received)}/{args.frames} frames of 50 readings back in order={in_order} "
            f"in {elapsed * 1000:.0f} ms; hostile payloads rejected: {rejects.total}"
        )
        if len(received) != args.frames or not in_order or rejects.total != 1:
            raise TransportError("smoke check failed: frames were lost, reordered or not rejected")
        print("ok")
        return 0


COMMAND = CheckCommand()
