"""``fedge bench ingest``: how fast an edge node takes in and scores sensor frames.

One run, one Mosquitto, one model (the built-in autoencoder over 60 x 8 windows), measured in a
separate node process exactly as deployed:

(a) ``ceiling``: the same frames subscribed and decoded only, nothing else: the most any node
    process could do through this broker;
(b) the edge node end to end (decode, windows, micro-batched ONNX scoring, detection) at
    stride 1 and at stride 10, in readings/s from first publish to last window scored;
(c) latency from publishing a frame that holds a spike to receiving the anomaly event, at a
    steady 1,000 readings/s (frames of 10), p50 and p99;
(d) the node process's resident memory (RSS) after the runs above.

The publisher uses QoS 1 so nothing is lost on the way; the node subscribes at QoS 1.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge_node.engine import EngineConfig
from edge_node.service import EdgeConfig, EdgeNode, client_options
from edge_node.windows import WindowConfig
from fedge.broker import start_broker
from fedge.endpoint import BrokerUrl
from fedge.mqtt import MqttClient, MqttOptions, Protocol
from fedge.topics import NodeChannel, TopicRoot
from fedge.transport import RejectLog, decoding
from fedge.wire import Event, GlobalModel, SensorFrame, encode

CHANNELS = tuple(f"ch{i}" for i in range(8))
WINDOW = 60
NODE = "bench-node"
EPOCH, PERIOD = 1.7e9, 0.001  # readings at 1 kHz
CALIBRATION = 200  # windows per device used to calibrate, excluded from the timing


def _values(start: int, rows: int) -> NDArray[np.float32]:
    t = np.arange(start, start + rows, dtype=np.float64)[:, None]
    phase = np.arange(len(CHANNELS))[None, :]
    noise = np.random.default_rng(start).standard_normal((rows, len(CHANNELS))) * 0.05
    return (np.sin(t / 13.0 + phase) + noise).astype(np.float32)


def _frame(seq: int, rows: int, spike: bool = False) -> SensorFrame:
    values = _values(seq * rows, rows)
    if spike:
        values[0, :] += 50.0
    t0 = EPOCH + seq * rows * PERIOD
    return SensorFrame("pump-0", seq, CHANNELS, values, t0=t0, period=PERIOD)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _node_process(  # noqa: PLR0917 - a multiprocessing target takes positional arguments
    url: BrokerUrl, protocol: Protocol, prefix: str, mode: str, stride: int, conn: Connection
) -> None:
    """Child: either only decode (mode 'ceiling') or run a real EdgeNode; report progress."""
    topics = TopicRoot(prefix)
    state = {"readings": 0, "last": 0.0}
    node: EdgeNode | None = None
    client: MqttClient | None = None
    if mode == "ceiling":

        def count(topic: str, frame: SensorFrame) -> None:
            state["readings"] += frame.rows
            state["last"] = time.time()

        client = MqttClient(url, MqttOptions(protocol=protocol)).connect()
        client.subscribe(topics.sensors_filter(NODE), decoding(SensorFrame, count, RejectLog()))
    else:

        def scored(device: str, end_index: Any, score: Any, version: int) -> None:
            state["readings"] += int(end_index.shape[0]) * stride
            state["last"] = time.time()

        config = EdgeConfig(
            node=NODE,
            state_dir=Path(tempfile.mkdtemp(prefix="fedge-bench-")),
            channels=CHANNELS,
            engine=EngineConfig(
                window=WindowConfig(WINDOW, stride=stride), calibration_windows=CALIBRATION
            ),
            heartbeat_s=3600,
        )
        options = client_options(NODE, topics, MqttOptions(protocol=protocol))
        node = EdgeNode(config, MqttClient(url, options), topics, on_scored=scored)
        node.start()
        deadline = time.monotonic() + 30
        while node.engine.model is None and time.monotonic() < deadline:
            time.sleep(0.01)
    conn.send("ready")
    while True:
        request = conn.recv()
        conn.send((state["readings"], state["last"], _rss_mb()))
        state["readings"] = 0
        if request == "stop":
            break
    if node is not None:
        node.stop()
    if client is not None:
        client.close()


def _calibration_frames(stride: int, rows: int) -> int:
    return (CALIBRATION * stride + WINDOW) // rows + 2


def _publish(client: MqttClient, topic: str, frames: list[bytes]) -> float:
    start = time.time()
    for payload in frames:
        client.publish(topic, payload)
    client.flush(300)
    return start


def _throughput(
    *, url: BrokerUrl, protocol: Protocol, prefix: str, mode: str, stride: int, readings: int
) -> dict[str, Any]:
    rows = 50
    topic = str(TopicRoot(prefix).sensors(NODE, "pump-0"))
    warmup = _calibration_frames(stride, rows) if mode != "ceiling" else 0
    calibration = [encode(_frame(seq, rows)) for seq in range(warmup)]
    frames = [encode(_frame(seq, rows)) for seq in range(warmup, warmup + readings // rows)]
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_node_process, args=(url, protocol, prefix, mode, stride, child))
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("benchmark node did not start")
        parent.recv()
        with MqttClient(url, MqttOptions(protocol=protocol, max_pending=2000)) as pub:
            if calibration:
                _publish(pub, topic, calibration)  # calibration first, outside the timing
                time.sleep(1.0)
                parent.send("stats")
                parent.recv()
            start = _publish(pub, topic, frames)
            expected = len(frames) * rows
            last_seen, done, last = -1, 0, start
            while True:  # wait until the node has processed everything, or stalls
                time.sleep(0.5)
                parent.send("stats")
                done_now, last_now, rss = parent.recv()
                done += done_now
                last = last_now or last
                if done >= expected * 0.999 or done == last_seen:
                    break
                last_seen = done
            parent.send("stop")
            parent.recv()
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    return {
        "readings": len(frames) * rows,
        "readings_per_s": round(done / max(last - start, 1e-9)),
        "processed_fraction": round(done / (len(frames) * rows), 4),
        "rss_mb": round(rss, 1),
    }


class IngestBenchmark:
    name = "ingest"
    help = "edge node throughput, latency and memory (60 x 8 windows, built-in autoencoder)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--readings", type=int, default=400_000)
        parser.add_argument("--architecture", default="dense_ae", choices=("dense_ae", "conv_ae"))

    def run(self, args: argparse.Namespace) -> dict[str, Any]:
        model = _model(args.architecture)
        prefix = "bench/fedge/v1"
        with start_broker() as broker:
            url, protocol = broker.url, broker.protocol
            with MqttClient(url, MqttOptions(protocol=protocol)) as pub:
                pub.publish(str(TopicRoot(prefix).model("default")), encode(model), retain=True)
                pub.flush(10)
            common = {"url": url, "protocol": protocol, "prefix": prefix, "readings": args.readings}
            ceiling = _throughput(**common, mode="ceiling", stride=1)
            stride10 = _throughput(**common, mode="node", stride=10)
            stride1 = _throughput(**common, mode="node", stride=1)
            latency = _latency(url, protocol, prefix)
        return {
            "model": args.architecture,
            "parameters": int(sum(a.size for a in model.arrays.values())),
            "window": WINDOW,
            "channels": len(CHANNELS),
            "frame_readings": 50,
            "ceiling_readings_per_s": ceiling["readings_per_s"],
            "node_stride10_readings_per_s": stride10["readings_per_s"],
            "node_stride1_readings_per_s": stride1["readings_per_s"],
            "ratio_to_ceiling_stride10": round(
                stride10["readings_per_s"] / ceiling["readings_per_s"], 3
            ),
            "processed_fraction_stride1": stride1["processed_fraction"],
            "latency_rate_readings_per_s": 1000,
            "latency_p50_ms": latency["p50"],
            "latency_p99_ms": latency["p99"],
            "latency_events": latency["events"],
            "rss_mb": max(stride1["rss_mb"], stride10["rss_mb"], latency["rss"]),
        }


def _model(architecture: str) -> GlobalModel:
    from fedge.models import ModelSpec  # noqa: PLC0415
    from fedge.models.networks import build_module, export_onnx, to_arrays  # noqa: PLC0415

    spec = ModelSpec(architecture, WINDOW, len(CHANNELS))
    module = build_module(spec, seed=0)
    return GlobalModel("default", 1, to_arrays(module), export_onnx(module, spec), spec.to_plain())


def _latency(url: BrokerUrl, protocol: Protocol, prefix: str) -> dict[str, Any]:
    """Spike frames at 1,000 readings/s (frames of 10); publish -> anomaly 'open' event."""
    rows, rate = 10, 1000.0
    topics = TopicRoot(prefix)
    topic = str(topics.sensors(NODE, "pump-0"))
    sent: dict[int, float] = {}
    latencies: list[float] = []

    def on_event(topic_: str, event: Event) -> None:
        if event.type != "anomaly" or event.data.get("state") != "open":
            return
        start = event.data.get("start")
        if isinstance(start, float):
            seq = round((start - EPOCH) / PERIOD) // rows
            for candidate in (seq, seq - 1):
                if candidate in sent:
                    latencies.append((time.time() - sent.pop(candidate)) * 1000)
                    return

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_node_process, args=(url, protocol, prefix, "node", 1, child))
    proc.start()
    try:
        parent.recv()
        with MqttClient(url, MqttOptions(protocol=protocol)) as pub:
            pub.subscribe(
                str(topics.node(NODE, NodeChannel.EVENTS)), decoding(Event, on_event, RejectLog())
            )
            for seq in range(100):  # calibration, paced like the rest
                pub.publish(topic, encode(_frame(seq, rows)))
                time.sleep(rows / rate)
            next_due = time.monotonic()
            for seq in range(100, 1100):
                spike = seq % 20 == 0
                payload = encode(_frame(seq, rows, spike=spike))
                next_due += rows / rate
                time.sleep(max(0.0, next_due - time.monotonic()))
                if spike:
                    sent[seq] = time.time()
                pub.publish(topic, payload)
            time.sleep(1.0)
        parent.send("stop")
        _, _, rss = parent.recv()
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    values = np.array(latencies)
    return {
        "p50": round(float(np.percentile(values, 50)), 2) if values.size else None,
        "p99": round(float(np.percentile(values, 99)), 2) if values.size else None,
        "events": int(values.size),
        "rss": rss,
    }


BENCHMARK = IngestBenchmark()
