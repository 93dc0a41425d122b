"""``fedge bench publish``: readings/s that ``fedge sim`` sustains into Mosquitto, vs the ceiling.

For each QoS and frame size, in one run against one broker (started here unless ``--broker``):

- ``ceiling_readings_per_s``: pre-encoded frames of the pump model's 6 channels published
  through ``MqttClient`` by ``fedge bench mqtt``'s own publish loop: nothing but publishing.
- ``sim_readings_per_s``: the real thing, ``simulate`` as ``fedge sim --fast`` runs it: the
  fleet generator (pump model, frames sliced from chunks, ``SensorFrame``, ``encode``) and
  ``FramePublisher`` with its backpressure, for a fleet of ``--nodes`` x ``--devices`` pumps.
- ``ratio_to_ceiling``: sim / ceiling; also at the top level as
  ``ratio_to_ceiling_qos{Q}_frame{N}``.
- ``*_cpu_us_per_frame``: CPU time of this process (main and network threads) per frame, a
  figure that other load on a shared machine barely moves.

Both end when the broker has everything: the last PUBACK for QoS 1; for QoS 0 the PUBACK of a
trailing QoS 1 marker, which MQTT's per-connection ordering puts after every frame. Both use
the MQTT options ``fedge sim`` uses by default. The two alternate ``--repeat`` times and each
figure is the best run (highest rate, lowest CPU).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from device_sim.fleet import Fleet, FleetSpec
from device_sim.publish import FramePublisher
from device_sim.pump import CHANNELS
from device_sim.sim_cli import simulate
from fedge.benchmarks import bench_broker
from fedge.benchmarks.mqtt import publish_frames as publish_ceiling  # `bench mqtt`'s loop
from fedge.endpoint import BrokerUrl
from fedge.mqtt import MqttClient, MqttOptions, Protocol
from fedge.topics import TopicRoot
from fedge.wire import encode

TOPICS = TopicRoot("bench/fedge/v1")
RATE_HZ = 1000.0  # irrelevant to the figures: --fast never waits; sets only the timestamps


def _fleet(rows: int, readings: int, nodes: int, devices: int) -> Fleet:
    per_device = max(1, readings // (nodes * devices))
    spec = FleetSpec(
        nodes=nodes,
        devices=devices,
        rate=RATE_HZ,
        frame_size=rows,
        readings=per_device,
        seed=0,
        start=1.7e9,
    )
    return Fleet(spec)


Run = tuple[int, float, float]  # readings, wall seconds, CPU seconds of this process


def _ceiling(url: BrokerUrl, options: MqttOptions, rows: int, qos: int, readings: int) -> Run:
    """Pre-encoded pump frames through the bare client."""
    count = max(1, readings // rows)
    frames = _fleet(rows, min(count, 2000) * rows, 1, 1).frames()
    payloads = [encode(frame) for _, frame, _ in frames]
    topic = str(TOPICS.sensors("node-0", "pump-0"))
    cpu = time.process_time()
    _, seconds = publish_ceiling(
        url=url, options=options, topic=topic, payloads=payloads, count=count, qos=qos
    )
    return count * rows, seconds, time.process_time() - cpu


def _sim(url: BrokerUrl, options: MqttOptions, fleet: Fleet, qos: int) -> Run:
    """``simulate`` as ``fedge sim --fast`` runs it."""
    with MqttClient(url, options) as client:
        publisher = FramePublisher(client, TOPICS, qos=qos)
        cpu, start = time.process_time(), time.perf_counter()
        simulate(fleet, publisher)
        if qos == 0:
            client.publish(str(TOPICS.sensors("node-0", "end")), b"", qos=1)
        client.flush(300)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return publisher.stats.readings, seconds, cpu


def _figures(runs: list[Run], rows: int) -> tuple[int, float]:
    """Best readings/s and lowest CPU microseconds per frame over the runs."""
    rate = max(readings / seconds for readings, seconds, _ in runs)
    cpu = min(cpu / (readings / rows) for readings, _, cpu in runs)
    return round(rate), round(cpu * 1e6, 1)


class PublishBenchmark:
    name = "publish"
    help = "readings/s `fedge sim` sustains into Mosquitto, against the raw publish ceiling"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--readings", type=int, default=400_000, help="readings per case")
        parser.add_argument(
            "--frame-sizes", default="10,50,200", help="readings per frame, comma-separated"
        )
        parser.add_argument("--nodes", type=int, default=2, help="simulated nodes (default 2)")
        parser.add_argument("--devices", type=int, default=4, help="pumps per node (default 4)")
        parser.add_argument("--repeat", type=int, default=5, help="runs per figure, best kept")

    def run(self, args: argparse.Namespace) -> dict[str, Any]:
        sizes = [int(s) for s in args.frame_sizes.split(",")]
        with bench_broker(args) as broker:
            return self._measure(args, sizes, broker.url, broker.protocol, broker.kind)

    def _measure(
        self,
        args: argparse.Namespace,
        sizes: list[int],
        url: BrokerUrl,
        protocol: Protocol,
        kind: str,
    ) -> dict[str, Any]:
        options = MqttOptions(protocol=protocol)  # what `fedge sim` uses unless configured
        results: dict[str, Any] = {
            "broker": kind,
            "channels": len(CHANNELS),
            "devices": args.nodes * args.devices,
            "max_inflight": options.max_inflight,
            "max_pending": options.max_pending,
        }
        ratios: dict[str, float] = {}
        for qos in (0, 1):
            for rows in sizes:
                fleet = _fleet(rows, args.readings, args.nodes, args.devices)
                ceilings: list[Run] = []
                sims: list[Run] = []
                for _ in range(args.repeat):  # interleaved: both see the same machine
                    ceilings.append(_ceiling(url, options, rows, qos, args.readings))
                    sims.append(_sim(url, options, fleet, qos))
                ceiling, ceiling_cpu = _figures(ceilings, rows)
                sim, sim_cpu = _figures(sims, rows)
                case = f"qos{qos}_frame{rows}"
                ratios[f"ratio_to_ceiling_{case}"] = round(sim / ceiling, 3)
                results[case] = {
                    "readings": fleet.total_readings,
                    "ceiling_readings_per_s": ceiling,
                    "sim_readings_per_s": sim,
                    "ratio_to_ceiling": round(sim / ceiling, 3),
                    "ceiling_cpu_us_per_frame": ceiling_cpu,
                    "sim_cpu_us_per_frame": sim_cpu,
                }
        return results | ratios


BENCHMARK = PublishBenchmark()
