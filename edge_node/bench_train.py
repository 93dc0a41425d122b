"""``fedge bench train``: what local training costs an edge node on this machine.

For each built-in autoencoder over 60 x 8 windows (``dense_ae``, the default model, and
``conv_ae``): one local epoch on 1,000 windows, run exactly as a node runs it, through
``edge_node.trainer.runner`` in a trainer child process, ``--repeats`` times.

- ``trainer_wall_s``: from ``start_training`` to the validated result in the parent: job files,
  process start, torch import, training, evaluation, ONNX export, result files (median);
- ``trainer_train_s``: the optimisation loop alone, as the child measures it (median);
- ``trainer_peak_rss_mb``: the child's peak resident memory, VmHWM (largest of the repeats),
  against the target of 400 MB (``trainer_peak_rss_target_mb``).

The top-level figures are the default model's; ``architectures`` holds each one's. The trainer
runs with a generous memory budget here so that the figure is measured rather than enforced.

The node (``node_figures``; ``--skip-node`` leaves it out): the drift scenario of
``tests/edge_node/test_learning.py`` against a Mosquitto of its own, the default model over the
scenario's 30 x 6 windows, the node in a spawned, torch-free process with its default learning
configuration. A simulated pump (seed 9) is calibrated and scored for 500 s of data; then its
pressure drifts by +25 % while frames keep coming at ``--node-rate`` readings/s until the
fine-tuned model has scored for a while. This process reads the node's RSS from /proc:

- ``node_rss_idle_before_mb``: idle after calibration and scoring, before any training;
- ``node_rss_training_mb``: the node while its trainer child runs (largest of samples every
  20 ms), with the child's own (``trainer_child_rss_mb`` sampled, ``trainer_child_peak_rss_mb``
  its VmHWM as it reports it);
- ``node_rss_idle_after_mb``: idle after the swap and more scoring; ``node_rss_idle_delta_mb``;
  then ``node_rss_idle_after_trimmed_mb``, once the node has handed its freed heap back to the
  OS (glibc ``malloc_trim``, done by this benchmark only): what it still uses, not what the
  allocator keeps.

``trigger_to_swap_s`` and ``trigger_to_finetune_event_s`` are on the node's own clock: from the
``trigger`` event's time (stamped as the node starts to act on the firing) to the first batch
the fine-tuned model scores, and to the ``finetune`` event.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import math
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from device_sim.fleet import Fleet, FleetSpec
from device_sim.pump import CHANNELS as PUMP_CHANNELS
from device_sim.scenario import parse_inject
from edge_node.engine import EngineConfig
from edge_node.learning import LearningConfig
from edge_node.service import EdgeConfig, EdgeNode, client_options
from edge_node.trainer import TrainingConfig, TrainingJob, TrainingResult, start_training
from edge_node.trainer.memory import peak_rss_mb, rss_mb
from edge_node.trainer.runner import run_training
from edge_node.windows import WindowConfig
from fedge.broker import start_broker
from fedge.endpoint import BrokerUrl
from fedge.models import BUILTIN_ARCHITECTURES, ModelSpec
from fedge.mqtt import MqttClient, MqttOptions, Protocol
from fedge.topics import NodeChannel, TopicRoot
from fedge.transport import RejectLog, decoding
from fedge.wire import Event, GlobalModel, ModelUpdate, SensorFrame, encode

WINDOW: Final = 60
CHANNELS: Final = 8
DEFAULT_MODEL: Final = "dense_ae"
RSS_TARGET_MB: Final = 400.0
MEASURING_BUDGET_MB: Final = 16_384.0

# The node's scenario, as in tests/edge_node/test_learning.py: seed 9's pump varies by ~12 % over
# its load cycle, below the trigger's 20 %; calibration spans the first 300 s (one cycle).
NODE_WINDOW: Final = 30
NODE_SPEC: Final = ModelSpec(DEFAULT_MODEL, NODE_WINDOW, len(PUMP_CHANNELS))
NODE, DEVICE, PREFIX = "bench-node", "pump-0", "bench/fedge/v1"
RATE, FRAME_ROWS, SEED, T0 = 10.0, 10, 9, 1_700_000_000.0
CALIBRATION: Final = 3000  # windows
BURST_AT_S, DRIFT_AT_S, IDLE_UNTIL_S, SCENARIO_END_S = 400.0, 550.0, 500.0, 4000.0
AFTER_SWAP_FRAMES: Final = 300  # 300 s of data scored by the fine-tuned model
SWAP_TARGET_S: Final = 30.0
IDLE_TOLERANCE_MB: Final = 5.0  # "unchanged": allocator and page-cache noise
SAMPLE_S: Final = 0.02


class TrainBenchmark:
    name = "train"
    help = "local training: trainer wall time and peak RSS, node RSS, trigger to swapped model"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--windows", type=int, default=1000, help="training windows")
        parser.add_argument("--epochs", type=int, default=1)
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--threads", type=int, default=1, help="torch threads in the child")
        parser.add_argument("--repeats", type=int, default=3, help="runs per architecture")
        parser.add_argument(
            "--architecture",
            action="append",
            choices=BUILTIN_ARCHITECTURES,
            help="measure only this model (repeatable; default: all built-in models)",
        )
        parser.add_argument(
            "--node-rate",
            type=float,
            default=1000.0,
            help="readings/s replayed to the node from the drift on (the pump samples at 10 Hz)",
        )
        parser.add_argument(
            "--skip-node",
            action="store_true",
            help="trainer figures only: no broker, no node process",
        )

    def run(self, args: argparse.Namespace) -> dict[str, Any]:
        architectures: list[str] = args.architecture or [DEFAULT_MODEL, "conv_ae"]
        config = TrainingConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            threads=args.threads,
            memory_budget_mb=MEASURING_BUDGET_MB,
            time_budget_s=3600.0,
        )
        per_model = {
            a: trainer_figures(a, args.windows, config, args.repeats) for a in architectures
        }
        main = per_model[DEFAULT_MODEL if DEFAULT_MODEL in per_model else architectures[0]]
        return {
            "model": main["model"],
            "window": WINDOW,
            "channels": CHANNELS,
            "windows": args.windows,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "repeats": args.repeats,
            "trainer_wall_s": main["trainer_wall_s"],
            "trainer_train_s": main["trainer_train_s"],
            "trainer_peak_rss_mb": main["trainer_peak_rss_mb"],
            "trainer_peak_rss_target_mb": RSS_TARGET_MB,
            "trainer_peak_rss_within_target": all(
                f["trainer_peak_rss_mb"] <= RSS_TARGET_MB for f in per_model.values()
            ),
            "architectures": per_model,
            **node_figures(args),
        }


def trainer_figures(
    architecture: str, count: int, config: TrainingConfig, repeats: int
) -> dict[str, Any]:
    """Train ``architecture`` ``repeats`` times in a child process; wall, loop and peak RSS."""
    spec = ModelSpec(architecture, WINDOW, CHANNELS)
    job = TrainingJob(spec, _base_arrays(spec), _windows(count), config)
    walls, results = [], []
    for _ in range(max(1, repeats)):
        with tempfile.TemporaryDirectory(prefix="fedge-bench-train-") as workdir:
            run = start_training(job, Path(workdir))
            results.append(run.result())
            assert run.wall_s is not None  # noqa: S101 - set once result() returned
            walls.append(run.wall_s)
    last: TrainingResult = results[-1]
    return {
        "model": architecture,
        "parameters": int(sum(a.size for a in job.base.values())),
        "trainer_wall_s": round(statistics.median(walls), 3),
        "trainer_train_s": round(statistics.median(r.metrics.train_s for r in results), 3),
        "trainer_duration_s": round(statistics.median(r.metrics.duration_s for r in results), 3),
        "trainer_peak_rss_mb": max(r.metrics.peak_rss_mb for r in results),
        "batches": last.metrics.batches,
        "loss_before": round(last.metrics.loss_before, 6),
        "loss_after": round(last.metrics.loss_after, 6),
        "onnx_bytes": len(last.onnx),
    }


def node_figures(args: argparse.Namespace) -> dict[str, Any]:
    """The always-on node around a drift-triggered fine-tune (see the module docstring).

    Torch comes in here only to train the scenario's global model; the node runs in a spawned
    process that never imports it (``node_imports_torch`` reports it).
    """
    if args.skip_node:
        return {}
    frames = scenario_frames(SCENARIO_END_S)
    model = scenario_global_model(frames)
    with (
        start_broker() as broker,
        tempfile.TemporaryDirectory(prefix="fedge-bench-node-") as state_dir,
    ):
        run = _measure_node(
            broker.url, broker.protocol, Path(state_dir), model, frames, rate=args.node_rate
        )
    return {
        "node_model": DEFAULT_MODEL,
        "node_window": NODE_WINDOW,
        "node_channels": len(PUMP_CHANNELS),
        "node_parameters": int(sum(a.size for a in model.arrays.values())),
        "node_finetune_epochs": LearningConfig().training.epochs,
        "node_replay_readings_per_s": args.node_rate,
        **run.figures(),
    }


def _base_arrays(spec: ModelSpec) -> dict[str, NDArray[np.float32]]:
    """Seeded initial weights; torch is imported here, in the benchmark, never in a node."""
    from fedge.models.networks import build_module, to_arrays  # noqa: PLC0415

    return to_arrays(build_module(spec, seed=0))


def _windows(count: int) -> NDArray[np.float32]:
    """Normalised windows of eight noisy phase-shifted sines, as a node would snapshot them."""
    rng = np.random.default_rng(0)
    t = np.arange(WINDOW)[None, :, None] + rng.integers(0, 10_000, (count, 1, 1))
    phase = np.arange(CHANNELS)[None, None, :]
    raw = np.sin(t / 13.0 + phase) + 0.05 * rng.standard_normal((count, WINDOW, CHANNELS))
    mean, std = raw.mean(axis=(0, 1)), raw.std(axis=(0, 1))
    normalised: NDArray[np.float32] = ((raw - mean) / std).astype(np.float32)
    return normalised


# -- the node's scenario ---------------------------------------------------------------------------


def scenario_frames(seconds: float) -> list[SensorFrame]:
    """The pump of the learning test: a 3 s burst at 400 s, pressure +25 % from 550 s on."""
    behaviours = (
        parse_inject(f"spike,at={BURST_AT_S:g}s,for=3s,channel=vibration_rms,magnitude=2"),
        parse_inject(f"drift,at={DRIFT_AT_S:g}s,channel=pressure,scale=1.25"),
    )
    spec = FleetSpec(
        rate=RATE,
        frame_size=FRAME_ROWS,
        readings=int(seconds * RATE),
        seed=SEED,
        start=T0,
        behaviours=behaviours,
    )
    return [frame for _, frame, _ in Fleet(spec).frames()]


def scenario_global_model(frames: Sequence[SensorFrame]) -> GlobalModel:
    """The pump's normal regime (before the drift, the burst left out), by the real trainer."""
    from fedge.models.networks import build_module, to_arrays  # noqa: PLC0415

    readings = np.concatenate([f.values for f in frames if f.t0 < T0 + DRIFT_AT_S - 10])
    calibration = readings[: CALIBRATION + NODE_WINDOW - 1]  # what the node normalises with
    burst = slice(int(BURST_AT_S * RATE) - NODE_WINDOW, int((BURST_AT_S + 10) * RATE))
    normal = np.delete(readings, np.arange(readings.shape[0])[burst], axis=0)
    norm = (normal - calibration.mean(axis=0)) / calibration.std(axis=0)
    windows = np.lib.stride_tricks.sliding_window_view(norm, NODE_WINDOW, axis=0)
    job = TrainingJob(
        NODE_SPEC,
        to_arrays(build_module(NODE_SPEC, seed=0)),
        np.ascontiguousarray(windows[::2].transpose(0, 2, 1), np.float32),
        TrainingConfig(epochs=30, lr=3e-3, memory_budget_mb=MEASURING_BUDGET_MB),
    )
    with tempfile.TemporaryDirectory(prefix="fedge-bench-global-") as workdir:
        result = run_training(job, Path(workdir))
    return GlobalModel("default", 1, result.arrays, result.onnx, NODE_SPEC.to_plain())


def node_config(state_dir: Path) -> EdgeConfig:
    """The node as ``fedge edge`` runs it, with the scenario's windows and calibration."""
    return EdgeConfig(
        node=NODE,
        state_dir=state_dir,
        channels=PUMP_CHANNELS,
        engine=EngineConfig(
            window=WindowConfig(NODE_WINDOW, stride=1),
            calibration_windows=CALIBRATION,
            max_calibration_set=CALIBRATION,
        ),
        heartbeat_s=3600,
    )


# -- the node process (torch-free) -----------------------------------------------------------------


@dataclass(frozen=True)
class NodeProgress:
    """What the node process reports on request; ``swapped_at`` is its wall clock."""

    frames: int
    swapped_at: float | None
    imports_torch: bool


def _node_process(url: BrokerUrl, protocol: Protocol, state_dir: str, conn: Connection) -> None:
    """Child: a real EdgeNode; notes when a locally fine-tuned model first scores a batch."""
    topics = TopicRoot(PREFIX)
    seen: dict[str, Any] = {"swaps": 0, "swapped_at": None}
    nodes: list[EdgeNode] = []

    def scored(device: str, end_index: Any, score: Any, version: int) -> None:
        engine = nodes[0].engine
        if engine.stats.swaps != seen["swaps"]:  # the batch just scored used a new model
            seen["swaps"] = engine.stats.swaps
            model = engine.model
            if seen["swapped_at"] is None and model is not None and model.origin == "local":
                seen["swapped_at"] = time.time()

    options = client_options(NODE, topics, MqttOptions(protocol=protocol))
    node = EdgeNode(node_config(Path(state_dir)), MqttClient(url, options), topics, scored)
    nodes.append(node)
    node.start()
    deadline = time.monotonic() + 60
    while node.engine.model is None and time.monotonic() < deadline:
        time.sleep(0.01)
    while True:
        request = conn.recv()
        if request == "trim":
            _release_free_heap()
        conn.send(
            NodeProgress(node.engine.stats.frames, seen["swapped_at"], "torch" in sys.modules)
        )
        if request == "stop":
            break
    node.stop()


def _release_free_heap() -> None:
    """Hand freed heap back to the OS (glibc ``malloc_trim``): live memory, not retained."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL(None).malloc_trim(0)


def parent_pid(stat: str) -> int:
    """The parent pid in a ``/proc/PID/stat`` line (the command name may hold spaces or ')')."""
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def child_pids(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Processes whose parent is ``pid`` (a node's trainer child), from ``/proc``."""
    children = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        if parent_pid(stat) == pid:
            children.append(int(entry.name))
    return children


class TrainingSampler:
    """Samples a node's RSS, and its children's, every ``SAMPLE_S`` while it has a child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.node_mb: list[float] = []
        self.child_mb: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> TrainingSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            children = child_pids(self.pid)
            node = rss_mb(self.pid)
            if not children or node is None:
                continue
            self.node_mb.append(node)
            self.child_mb.append(sum(rss_mb(c) or 0.0 for c in children))


# -- measuring -------------------------------------------------------------------------------------


@dataclass
class NodeRun:
    """Raw measurements of one scenario run; ``figures`` names and rounds them."""

    rss_idle_before: float
    rss_idle_after: float = math.nan
    rss_idle_after_trimmed: float = math.nan
    rss_peak: float = math.nan
    training_node_mb: list[float] = field(default_factory=list)
    training_child_mb: list[float] = field(default_factory=list)
    events: dict[str, Event] = field(default_factory=dict)  # the first of each type
    updates: int = 0
    swapped_at: float | None = None
    imports_torch: bool = False

    def figures(self) -> dict[str, Any]:
        trigger = self.events.get("trigger")
        finetune = self.events.get("finetune")
        since = trigger.time if trigger else None
        to_swap = _elapsed(since, self.swapped_at)
        delta = self.rss_idle_after - self.rss_idle_before
        metrics = finetune.data if finetune else {}
        return {
            "node_imports_torch": self.imports_torch,
            "node_rss_idle_before_mb": _round(self.rss_idle_before, 1),
            "node_rss_training_mb": _round(max(self.training_node_mb, default=math.nan), 1),
            "node_rss_training_samples": len(self.training_node_mb),
            "trainer_child_rss_mb": _round(max(self.training_child_mb, default=math.nan), 1),
            "trainer_child_peak_rss_mb": metrics.get("peak_rss_mb"),
            "node_rss_idle_after_mb": _round(self.rss_idle_after, 1),
            "node_rss_idle_delta_mb": _round(delta, 1),
            "node_rss_idle_tolerance_mb": IDLE_TOLERANCE_MB,
            "node_rss_idle_unchanged": bool(abs(delta) <= IDLE_TOLERANCE_MB),
            "node_rss_idle_after_trimmed_mb": _round(self.rss_idle_after_trimmed, 1),
            "node_rss_peak_mb": _round(self.rss_peak, 1),
            "trigger_statistic": trigger.data.get("statistic") if trigger else None,
            "finetune_windows": _int(metrics.get("samples")),
            "finetune_train_s": metrics.get("train_s"),
            "finetune_trainer_s": metrics.get("duration_s"),
            "trigger_to_finetune_event_s": _elapsed(since, finetune.time if finetune else None),
            "trigger_to_swap_s": to_swap,
            "trigger_to_swap_target_s": SWAP_TARGET_S,
            "trigger_to_swap_within_target": to_swap is not None and to_swap <= SWAP_TARGET_S,
            "update_sent": self.updates > 0,
        }


def _elapsed(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _round(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def _idle_rss(pid: int, samples: int = 5) -> float:
    """Median VmRSS of an idle process over about a second."""
    values = []
    for _ in range(samples):
        time.sleep(0.2)
        values.append(rss_mb(pid) or math.nan)
    return statistics.median(values)


def _ask(conn: Connection, request: str = "progress") -> NodeProgress:
    conn.send(request)
    progress: NodeProgress = conn.recv()
    return progress


def _wait(conn: Connection, frames: int, timeout_s: float = 60.0) -> NodeProgress:
    """Until the node has taken in ``frames`` frames (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while (progress := _ask(conn)).frames < frames and time.monotonic() < deadline:
        time.sleep(0.05)
    return progress


def _measure_node(
    url: BrokerUrl,
    protocol: Protocol,
    state_dir: Path,
    model: GlobalModel,
    frames: Sequence[SensorFrame],
    *,
    rate: float,
) -> NodeRun:
    topics = TopicRoot(PREFIX)
    before = [encode(f) for f in frames if f.t0 < T0 + IDLE_UNTIL_S]
    drift = [encode(f) for f in frames if f.t0 >= T0 + IDLE_UNTIL_S]
    run = NodeRun(rss_idle_before=math.nan)

    def on_event(topic: str, event: Event) -> None:
        run.events.setdefault(event.type, event)

    def on_update(topic: str, update: ModelUpdate) -> None:
        run.updates += 1

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    with MqttClient(url, MqttOptions(protocol=protocol, max_pending=2000)) as pub:
        pub.subscribe(
            topics.node_filter(NodeChannel.EVENTS), decoding(Event, on_event, RejectLog())
        )
        pub.subscribe(
            topics.node_filter(NodeChannel.UPDATES), decoding(ModelUpdate, on_update, RejectLog())
        )
        pub.publish(str(topics.model("default")), encode(model), retain=True)
        pub.flush(10)
        proc = ctx.Process(target=_node_process, args=(url, protocol, str(state_dir), child))
        proc.start()
        child.close()  # a node that dies ends our recv() with EOFError instead of a hang
        assert proc.pid is not None  # noqa: S101 - set by start()
        try:
            _ask(parent)  # answers once the global model is installed
            sensors = str(topics.sensors(NODE, DEVICE))
            for payload in before:  # calibration and normal scoring, as fast as it goes
                pub.publish(sensors, payload)
            pub.flush(60)
            _wait(parent, len(before))
            run.rss_idle_before = _idle_rss(proc.pid)
            with TrainingSampler(proc.pid) as sampler:
                sent = _replay_drift(pub, sensors, drift, parent, rate)
                progress = _wait(parent, len(before) + sent)
                deadline = time.monotonic() + 30
                while not run.updates and time.monotonic() < deadline:
                    time.sleep(0.05)
            run.rss_idle_after = _idle_rss(proc.pid)
            run.rss_peak = peak_rss_mb(proc.pid)
            run.training_node_mb = sampler.node_mb
            run.training_child_mb = sampler.child_mb
            run.swapped_at, run.imports_torch = progress.swapped_at, progress.imports_torch
            _ask(parent, "trim")
            run.rss_idle_after_trimmed = _idle_rss(proc.pid)
            _ask(parent, "stop")
        finally:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return run


def _replay_drift(
    pub: MqttClient, topic: str, frames: Sequence[bytes], conn: Connection, rate: float
) -> int:
    """Paced frames until the fine-tuned model has scored ``AFTER_SWAP_FRAMES``; how many."""
    interval = FRAME_ROWS / rate
    next_due, swapped_after, sent = time.monotonic(), None, 0
    for sent, payload in enumerate(frames, 1):
        next_due += interval
        time.sleep(max(0.0, next_due - time.monotonic()))
        pub.publish(topic, payload)
        if swapped_after is None and sent % 10 == 0 and _ask(conn).swapped_at is not None:
            swapped_after = sent
        if swapped_after is not None and sent - swapped_after >= AFTER_SWAP_FRAMES:
            break
    pub.flush(60)
    return sent


BENCHMARK = TrainBenchmark()
