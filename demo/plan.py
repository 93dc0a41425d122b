"""What one demo run does: its settings, the injected scenario, and each child's command line.

Everything here is pure (no processes, no broker), so the timeline and the command lines are
unit-tested. The simulated pumps run on their own clock (*data time*), faster than the wall
clock (``speed`` in the scenario, twice that in the warm-up), in two phases:

1. **Warm-up.** The pumps' first ``CALIBRATION_S`` (15 minutes) of normal data calibrate every
   edge node: normalisation, threshold and the drift trigger's baseline. The aggregator's
   rounds then train the bootstrap model, which starts out untrained, while the same stretch
   of normal data plays again (the simulator restarts: a new stream for the nodes) until the
   last round has closed. Data the nodes were calibrated on raises no false alarm even under
   the untrained model, and the rounds take the wall time they need without using up the
   scenario.
2. **Scenario.** The pumps start over once more, for the same 15 minutes, now with anomalies
   injected on the nodes in turn and one pump's pressure drifting by +30 % (``DRIFT``), early
   enough for its node's trigger (a 20 % deviation held for ``TRIGGER_S``, the edge defaults)
   to fire, fine-tune and score a while. Staying within the span the nodes calibrated on keeps
   the pumps' slow load waves (hours long) from looking like drift or anomalies.

Each simulator run gets an explicit ``--start`` after the previous one's data, so time on the
wire only moves forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from device_sim.pump import CHANNELS
from fedge.errors import ConfigError

RATE_HZ: Final = 10.0  # the simulator's default pump sampling rate
WINDOW: Final = 60  # readings per window, the edge node's and aggregator's default
STRIDE: Final = 10  # a window every second of data
CALIBRATION_WINDOWS: Final = 900  # 15 minutes of data per pump: a process cycle or more
CALIBRATION_S: Final = ((CALIBRATION_WINDOWS - 1) * STRIDE + WINDOW) / RATE_HZ
WARMUP_S: Final = CALIBRATION_S + 25.0  # one warm-up run: calibration with room to spare
SCENARIO_S: Final = CALIBRATION_S  # the span the nodes calibrated on
TRIGGER_S: Final = 120.0 + 300.0  # the edge node's default trigger window + sustain time
FIRST_ANOMALY_S: Final = 90.0
ANOMALY_GAP_S: Final = 80.0
DRIFT_AT_S: Final = 120.0
DRIFT_OVER_S: Final = 30.0
WARMUP_SPEEDUP: Final = 2.0  # calibration and the replays run faster than the scenario
DRIFT = "drift,at={at:g}s,channel=pressure,scale=1.3,over={over:g}s,device={device}"
# (kind, duration s, extra keys): what each injected anomaly is, in turn.
ANOMALIES: Final = (
    ("cavitation", 40.0, ""),
    ("step", 45.0, ",magnitude=0.4"),
    ("spike", 20.0, ",magnitude=1.5"),
    ("noise", 40.0, ",magnitude=0.5"),
    ("dropout", 20.0, ""),
)
LIMITS: Final = {"nodes": (1, 8), "devices": (1, 8), "rounds": (1, 20)}


@dataclass(frozen=True)
class DemoSettings:
    """A validated demo run."""

    nodes: int = 3
    devices: int = 2
    rounds: int = 3
    speed: float = 30.0  # the scenario's; the warm-up runs WARMUP_SPEEDUP times faster
    seed: int = 0
    timeout_s: float = 300.0  # wall time after which a run without its rounds fails
    deadline_s: float = 60.0  # a round's deadline on the aggregator

    def __post_init__(self) -> None:
        for key, (lo, hi) in LIMITS.items():
            value = getattr(self, key)
            if not lo <= value <= hi:
                raise ConfigError(key, f"{value} is outside {lo}-{hi}")
        if not 1 <= self.speed <= 100:
            raise ConfigError("speed", f"{self.speed:g} is outside 1-100 (times real time)")
        if self.seed < 0:
            raise ConfigError("seed", f"{self.seed} must be >= 0")
        if not self.timeout_s > 0:
            raise ConfigError("timeout", f"{self.timeout_s:g} must be > 0")

    @property
    def node_ids(self) -> list[str]:
        return [f"node-{k}" for k in range(self.nodes)]

    @property
    def drift_device(self) -> tuple[str, str]:
        return f"node-{1 % self.nodes}", "pump-0"

    @property
    def warmup_speed(self) -> float:
        return self.speed * WARMUP_SPEEDUP

    @property
    def scenario_wall_s(self) -> float:
        """How long the scenario takes at this speed (more when the machine falls behind)."""
        return SCENARIO_S / self.speed


def scenario(settings: DemoSettings) -> list[str]:
    """The scenario's ``--inject`` specs: anomalies on the nodes in turn, then one drift.

    One anomaly per node at least, five unless there are more nodes; an anomaly that would
    land on the drifting pump after the drift began moves to another pump (its alarms then
    belong to the drift), or is left out when the fleet has a single pump.
    """
    node, device = settings.drift_device
    specs: list[str] = []
    for k in range(max(settings.nodes, len(ANOMALIES))):
        kind, length, extra = ANOMALIES[k % len(ANOMALIES)]
        at = FIRST_ANOMALY_S + k * ANOMALY_GAP_S
        target = f"node-{k % settings.nodes}", f"pump-{(k // settings.nodes) % settings.devices}"
        if target == (node, device) and at + length >= DRIFT_AT_S:
            if settings.devices > 1:
                target = node, f"pump-{(int(device[5:]) + 1) % settings.devices}"
            elif settings.nodes > 1:
                target = f"node-{(int(node[5:]) + 1) % settings.nodes}", device
            else:
                continue
        specs.append(f"{kind},at={at:g}s,for={length:g}s,device={target[0]}/{target[1]}{extra}")
    specs.append(DRIFT.format(at=DRIFT_AT_S, over=DRIFT_OVER_S, device=f"{node}/{device}"))
    return specs


@dataclass(frozen=True)
class RunFiles:
    """Where one run keeps its files."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def registry(self) -> Path:
        return self.root / "aggregator.db"

    @property
    def aggregator_config(self) -> Path:
        return self.root / "aggregator.toml"

    @property
    def edge_config(self) -> Path:
        return self.root / "edge.toml"

    @property
    def truth(self) -> Path:
        return self.root / "ground-truth.csv"

    def state(self, node: str) -> Path:
        return self.root / "nodes" / node


# Settings with no flag of their own go in each component's table of a config file.
AGGREGATOR_TABLE: Final = """\
# Written by fedge demo: what the aggregator's flags do not cover.
[aggregator]
round_interval_s = 1.0    # the next round starts one second after a version is out
# A drift fine-tune's update waits in the FedBuff buffer (buffer_k = 10 by default), so the
# node keeps the model it tuned for its drifted pump.
"""
EDGE_TABLE: Final = f"""\
# Written by fedge demo: what the edge node's flags do not cover.
[edge]
calibration_windows = {CALIBRATION_WINDOWS}  # per pump: 15 minutes of data, a process cycle
"""


def broker_command(embedded: bool) -> list[str]:
    """``fedge broker`` on a free port: Mosquitto, else (or with ``embedded``) amqtt."""
    return ["broker", "--port", "0", "--data-dir", "broker", *(["--embedded"] if embedded else [])]


def aggregator_command(settings: DemoSettings, files: RunFiles) -> list[str]:
    return [
        "aggregator",
        "--config", str(files.aggregator_config),
        "--registry", str(files.registry),
        "--window", str(WINDOW),
        "--channels", str(len(CHANNELS)),
        "--seed", str(settings.seed),
        "--rounds", str(settings.rounds),
        "--min-nodes", str(settings.nodes),
        "--deadline-s", f"{settings.deadline_s:g}",
        "--epochs", "2",
    ]  # fmt: skip


def edge_command(node: str, files: RunFiles) -> list[str]:
    return [
        "edge",
        "--config", str(files.edge_config),
        "--node", node,
        "--state-dir", str(files.state(node)),
        "--channels", ",".join(CHANNELS),
        "--window", str(WINDOW),
        "--stride", str(STRIDE),
    ]  # fmt: skip


def sim_command(
    settings: DemoSettings, files: RunFiles, *, start: float, scenario_run: bool
) -> list[str]:
    """A warm-up run (normal data, calibration length) or the scenario run, from ``start``."""
    duration = SCENARIO_S if scenario_run else WARMUP_S
    command = [
        "sim",
        "--nodes", str(settings.nodes),
        "--devices", str(settings.devices),
        "--rate", f"{RATE_HZ:g}",
        "--duration", f"{duration:g}s",
        "--speed", f"{settings.speed if scenario_run else settings.warmup_speed:g}",
        "--seed", str(settings.seed),
        "--start", f"{start:.3f}",
    ]  # fmt: skip
    if scenario_run:
        command += ["--labels-file", str(files.truth)]
        for spec in scenario(settings):
            command += ["--inject", spec]
    return command


def mqtt_flags(url: str, protocol: str, topic_prefix: str | None, log_level: str) -> list[str]:
    """The common options every child gets: where the broker is and how to log."""
    flags = ["--broker", url, "--mqtt-protocol", protocol, "--log-level", log_level]
    return flags + (["--topic-prefix", topic_prefix] if topic_prefix else [])
