"""``fedge bench mqtt``: readings/s through Mosquitto with the MQTT layer, by frame size and QoS.

Frames carry 8-channel float32 readings. For each QoS and frame size:

- ``publish_readings_per_s``: one process encodes nothing (frames are pre-built) and publishes
  until the broker has everything. For QoS 1 that is the last PUBACK; for QoS 0 a final QoS 1
  marker is published and its PUBACK awaited, which (MQTT keeps order per connection) means
  the broker has read every QoS 0 frame before it. No subscriber is connected.
- ``delivered_readings_per_s``: the same stream with a subscriber in a second process that
  receives and decodes every frame (as an edge node would); readings decoded per second from
  the first publish to the last frame decoded, and the fraction of frames that arrived.

Publisher, subscriber and Mosquitto share the machine's cores, as on a single gateway.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from fedge.benchmarks import bench_broker
from fedge.endpoint import BrokerUrl
from fedge.mqtt import MqttClient, MqttOptions
from fedge.topics import TopicRoot
from fedge.transport import RejectLog, decoding
from fedge.wire import SensorFrame, encode

CHANNELS = tuple(f"ch{i}" for i in range(8))
IDLE_S = 2.0


def _frames(rows: int, count: int) -> list[bytes]:
    rng = np.random.default_rng(rows)
    block = rng.standard_normal((rows, len(CHANNELS))).astype(np.float32)
    # Distinct frames, pre-built so nothing but publishing sits in the timed loop.
    return [
        encode(SensorFrame("pump-1", seq, CHANNELS, block, t0=1.7e9 + seq, period=0.001))
        for seq in range(count)
    ]


def _subscriber(  # noqa: PLR0917 - multiprocessing passes a target's arguments by position
    url: BrokerUrl, options: MqttOptions, topic: str, qos: int, expected: int, conn: Connection
) -> None:
    """Child process: count decoded frames; report (frames, readings, last wall time)."""
    state = {"frames": 0, "readings": 0, "last": 0.0}

    def count(topic: str, frame: SensorFrame) -> None:
        state["frames"] += 1
        state["readings"] += frame.rows
        state["last"] = time.time()

    with MqttClient(url, options) as sub:
        sub.subscribe(topic, decoding(SensorFrame, count, RejectLog()), qos=qos)
        conn.send("ready")
        seen, idle_since = -1, time.monotonic()
        while state["frames"] < expected:
            time.sleep(0.05)
            if state["frames"] != seen:
                seen, idle_since = int(state["frames"]), time.monotonic()
            elif seen > 0 and time.monotonic() - idle_since > IDLE_S:
                break  # QoS 0 (or a broker queue limit) lost the rest
            elif time.monotonic() - idle_since > 60:
                break
    conn.send((state["frames"], state["readings"], state["last"]))


def publish_frames(
    *, url: BrokerUrl, options: MqttOptions, topic: str, payloads: list[bytes], count: int, qos: int
) -> tuple[float, float]:
    """Publish ``count`` frames; return (wall start, seconds until the broker had them all)."""
    with MqttClient(url, options) as pub:
        wall, start = time.time(), time.perf_counter()
        for i in range(count):
            pub.publish(topic, payloads[i % len(payloads)], qos=qos)
        if qos == 0:
            pub.publish(topic + "/end", b"", qos=1)  # acked only after every frame before it
        pub.flush(300)
        return wall, time.perf_counter() - start


def _run_case(
    *, url: BrokerUrl, options: MqttOptions, topic: str, rows: int, qos: int, readings: int
) -> dict[str, Any]:
    count = max(1, readings // rows)
    payloads = _frames(rows, min(count, 2000))

    def publish() -> tuple[float, float]:
        return publish_frames(
            url=url, options=options, topic=topic, payloads=payloads, count=count, qos=qos
        )

    _, published = publish()

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_subscriber, args=(url, options, topic, qos, count, child))
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("benchmark subscriber did not start")
        parent.recv()
        wall_start, _ = publish()
        frames, delivered, last = parent.recv()
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    return {
        "frames": count,
        "readings": count * rows,
        "publish_readings_per_s": round(count * rows / published),
        "delivered_readings_per_s": round(delivered / max(last - wall_start, 1e-9)),
        "delivered_fraction": round(frames / count, 4),
    }


class MqttBenchmark:
    name = "mqtt"
    help = "publish/subscribe throughput through Mosquitto with fedge's MQTT layer"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--readings", type=int, default=400_000, help="readings per case")
        parser.add_argument(
            "--frame-sizes", default="1,10,50,200", help="readings per frame, comma-separated"
        )

    def run(self, args: argparse.Namespace) -> dict[str, Any]:
        sizes = [int(s) for s in args.frame_sizes.split(",")]
        topic = str(TopicRoot("bench/fedge/v1").sensors("node-1", "pump-1"))
        results: dict[str, Any] = {"channels": 8}
        with bench_broker(args) as broker:
            options = MqttOptions(protocol=broker.protocol, max_pending=2000, max_inflight=1000)
            results["broker"] = broker.kind
            for qos in (0, 1):
                for rows in sizes:
                    # Fewer readings for tiny frames: per-message cost dominates there.
                    n = args.readings if rows >= 10 else args.readings // 10
                    results[f"qos{qos}_frame{rows}"] = _run_case(
                        url=broker.url,
                        options=options,
                        topic=topic,
                        rows=rows,
                        qos=qos,
                        readings=n,
                    )
        return results


BENCHMARK = MqttBenchmark()
