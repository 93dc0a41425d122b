"""``fedge sim``: publish a fleet of synthetic pumps to a broker, with injected behaviour.

Settings come from flags, else the ``[sim]`` table of ``--config``, else the defaults (see
docs/device_sim.md). Injected behaviour adds up from ``[sim] inject``, ``--scenario`` and every
``--inject``. Everything is validated before connecting, so a mistake costs one line on stderr
and exit 2. Progress (readings, rate, ETA) goes to stderr; a summary line to stdout at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from device_sim.argtypes import counted
from device_sim.behaviour import Behaviour
from device_sim.fleet import Fleet, FleetSpec, check_rate
from device_sim.ground_truth import check_path, write_events
from device_sim.publish import FramePublisher, Pacer
from device_sim.scenario import load_scenario, parse_duration, parse_inject, parse_number
from fedge.config import load_file, mqtt_settings, section
from fedge.errors import ConfigError
from fedge.mqtt import MqttClient
from fedge.progress import Progress
from fedge.wire import LabelFrame, SensorFrame

log = logging.getLogger(__name__)

SIM_KEYS: Final = frozenset(
    {
        "nodes",
        "devices",
        "first_node",
        "rate",
        "frame_size",
        "duration",
        "seed",
        "qos",
        "speed",
        "start",
        "inject",
        "scenario",
        "labels_file",
    }
)
FLUSH_TIMEOUT_S: Final = 60.0
BATCH_FRAMES: Final = 256  # frames encoded, then published back to back (see simulate)


@dataclass(frozen=True)
class SimSettings:
    """A validated simulation: the fleet, how to publish it, where ground truth goes."""

    fleet: FleetSpec
    qos: int
    speed: float
    labels_file: Path | None


def simulate(
    fleet: Fleet,
    publisher: FramePublisher,
    *,
    speed: float = math.inf,
    progress: Progress | None = None,
    sent: dict[tuple[str, str], int] | None = None,
) -> None:
    """Publish every frame of ``fleet``, paced at ``speed`` x real time (inf: no waiting).

    Frames go out in batches (``FramePublisher.send_batch``): the frames of one time slot when
    paced, up to ``BATCH_FRAMES`` when not, so publishing runs back to back between bursts of
    generation. ``sent`` counts the readings published per ``(node, device)``, exact even when
    the run is interrupted.
    """
    pacer = Pacer(speed)
    counts: dict[tuple[str, str], int] = {} if sent is None else sent
    batch: list[tuple[str, SensorFrame, LabelFrame | None]] = []

    def flush_batch() -> None:
        pacer.wait_until(batch[0][1].t0)
        before = publisher.stats.frames
        try:
            publisher.send_batch(batch)
        finally:
            for node, frame, _ in batch[: publisher.stats.frames - before]:
                key = (node, frame.device)
                counts[key] = counts.get(key, 0) + frame.rows
                if progress is not None:
                    progress.update(frame.rows)
            batch.clear()

    paced = not math.isinf(speed)
    for item in fleet.frames():
        if batch and (len(batch) >= BATCH_FRAMES or (paced and item[1].t0 != batch[0][1].t0)):
            flush_batch()
        batch.append(item)
    if batch:
        flush_batch()


def sim_settings(args: argparse.Namespace, config: Mapping[str, Any]) -> SimSettings:
    """Merge flags over the ``[sim]`` table over the defaults, and validate everything."""
    table = section(config, "sim", SIM_KEYS)

    def pick(key: str, default: Any = None) -> Any:
        value = getattr(args, key, None)
        return value if value is not None else table.get(key, default)

    rate = check_rate(parse_number("rate", pick("rate", 10.0)))
    duration = pick("duration")
    readings = None
    if duration is not None:
        seconds = parse_duration("duration", duration)
        readings = round(seconds * rate)
        if seconds <= 0 or readings < 1:
            raise ConfigError("duration", f"{duration!r} covers no reading at {rate:g} Hz")
    behaviours: list[Behaviour] = []
    if pick("scenario") is not None:
        behaviours += load_scenario(str(pick("scenario")))
    inject = table.get("inject", [])
    if not isinstance(inject, list) or not all(isinstance(s, str) for s in inject):
        raise ConfigError("sim.inject", "must be a list of specs such as 'spike,at=90s'")
    behaviours += [parse_inject(spec) for spec in [*inject, *(args.inject or [])]]
    speed = math.inf if args.fast else _speed(pick("speed", 1.0))
    qos = _integer("qos", pick("qos", 1))
    if qos not in (0, 1, 2):
        raise ConfigError("qos", f"{qos} is not 0, 1 or 2")
    labels_file = pick("labels_file")
    fleet = FleetSpec(
        nodes=_integer("nodes", pick("nodes", 1)),
        devices=_integer("devices", pick("devices", 1)),
        first_node=_integer("first-node", pick("first_node", 0)),
        rate=rate,
        # About one frame per device per second unless told otherwise.
        frame_size=_integer("frame-size", pick("frame_size", min(1000, max(1, round(rate))))),
        readings=readings,
        seed=_integer("seed", pick("seed", 0)),
        start=_start(pick("start")),
        behaviours=tuple(behaviours),
    )
    return SimSettings(
        fleet=fleet,
        qos=qos,
        speed=speed,
        labels_file=None if labels_file is None else check_path(str(labels_file)),
    )


class SimCommand:
    """The ``fedge sim`` subcommand."""

    name = "sim"
    help = "simulate a fleet of industrial pumps publishing sensor frames (with injected faults)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        # Values stay strings here and are validated in run(), so a bad one is one clear line.
        add = parser.add_argument
        add("--nodes", metavar="N", help="edge nodes to simulate (default 1)")
        add("--devices", metavar="N", help="pumps per node (default 1)")
        add("--first-node", metavar="K", help="number of the first node, node-K (default 0)")
        add("--rate", metavar="HZ", help="readings per second per device, 0.1-10000 (default 10)")
        add(
            "--frame-size",
            metavar="N",
            help="readings per message (default: about one message per device per second)",
        )
        add(
            "--duration",
            metavar="TIME",
            help="data time to simulate, e.g. 90s, 2h (default: endless)",
        )
        add("--seed", metavar="N", help="seed: same seed, same data (default 0)")
        add("--qos", metavar="0|1", help="QoS of sensor frames (default 1; labels always use 1)")
        add("--speed", metavar="X", help="X times real time (default 1)")
        add("--fast", action="store_true", help="publish as fast as the broker takes it")
        add(
            "--start",
            metavar="TIME",
            help="time of the first reading, epoch seconds or ISO 8601 (default: now)",
        )
        add(
            "--inject",
            action="append",
            metavar="SPEC",
            help="inject behaviour, e.g. spike,at=90s,channel=vibration_rms,device=node-0/pump-1 "
            "or drift,at=1h,channel=pressure,scale=1.25 (repeatable; see docs/device_sim.md)",
        )
        add("--scenario", metavar="PATH", help="TOML file of [[anomaly]] and [[drift]] tables")
        add("--labels-file", metavar="PATH", help="write the ground truth here (.csv or .jsonl)")

    def run(self, args: argparse.Namespace) -> int:
        config = load_file(args.config)
        settings = sim_settings(args, config)
        mqtt = mqtt_settings(args, config)
        fleet = Fleet(settings.fleet)
        spec = settings.fleet
        log.info(
            "simulating %d pump(s) on %d node(s): %g Hz, %d readings/frame, QoS %d, %s, to %s",
            len(fleet.signals),
            spec.nodes,
            spec.rate,
            spec.frame_size,
            settings.qos,
            "as fast as possible"
            if math.isinf(settings.speed)
            else f"{settings.speed:g}x real time",
            mqtt.url,
        )
        client = MqttClient(mqtt.url, mqtt.with_client(f"fedge-sim-{uuid.uuid4().hex[:8]}"))
        client.connect()
        publisher = FramePublisher(client, mqtt.topics, qos=settings.qos)
        progress = Progress("fedge sim", fleet.total_readings, unit="readings")
        sent: dict[tuple[str, str], int] = {}
        started = time.monotonic()
        try:
            simulate(fleet, publisher, speed=settings.speed, progress=progress, sent=sent)
            if not publisher.flush(FLUSH_TIMEOUT_S):
                log.warning("some QoS 1 frames were not acknowledged within %g s", FLUSH_TIMEOUT_S)
        finally:
            client.close()
            progress.close()
            if settings.labels_file is not None:
                written = write_events(settings.labels_file, fleet.events(sent))
                log.info("wrote %d ground-truth event(s) to %s", written, settings.labels_file)
        stats = publisher.stats
        sys.stdout.write(
            f"fedge sim: published {counted(stats.frames, 'frame')} "
            f"({counted(stats.readings, 'reading')}) and "
            f"{counted(stats.label_frames, 'label frame')} from "
            f"{counted(len(fleet.signals), 'pump')} on {counted(spec.nodes, 'node')} "
            f"in {time.monotonic() - started:,.1f} s\n"
        )
        return 0


def _integer(key: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ConfigError(key, f"{value!r} is not an integer")


def _speed(value: object) -> float:
    if value == "fast":
        return math.inf
    speed = parse_number("speed", value)
    if not speed > 0:
        raise ConfigError("speed", f"{value!r} must be > 0 (or use --fast)")
    return speed


def _start(value: object) -> float:
    """Epoch seconds from a number, an ISO 8601 string or a TOML datetime (naive means UTC)."""
    if value is None:
        return time.time()
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                raise ConfigError(
                    "start", f"{value!r} is neither epoch seconds nor an ISO 8601 time"
                ) from None
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return stamp.timestamp()
    return parse_number("start", value)


COMMAND = SimCommand()
