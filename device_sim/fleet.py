"""A fleet of simulated pumps: nodes x devices, as a pure generator of frames in time order.

``Fleet.frames()`` is the one code path that produces what ``fedge sim`` publishes; tests call it
directly to know, without a broker, exactly which frames must arrive. It yields
``(node, SensorFrame, LabelFrame | None)``: frame ``seq`` of every device (nodes in order, devices
in order within a node), then frame ``seq + 1``, and so on, so the stream never goes back in
time. Ids are ``node-{k}`` (``k`` from ``first_node``, so several processes can share one fleet)
and ``pump-{j}`` within each node.

Reading ``i`` of a device is taken at ``start + i / rate``; frames carry ``t0`` and ``period``
(regular sampling). Values depend only on (seed, node number, device number, reading index,
rate): a device's readings are generated in fixed chunks and then sliced into frames, so the
frame size never changes a value. A label frame accompanies a sensor frame only when one of its
readings carries a non-zero label; no label frame means every reading in it is normal.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from device_sim.behaviour import LABEL_NAMES, Anomaly, Behaviour, DeviceSchedule, matches
from device_sim.ground_truth import LabelEvent
from device_sim.pump import CHANNELS, CHUNK, PumpModel
from fedge.errors import ConfigError
from fedge.wire import LabelFrame, SensorFrame

MIN_RATE = 0.1
MAX_RATE = 10_000.0
MAX_FRAME_SIZE = 100_000
MAX_DEVICES = 10_000  # about 30 kB of buffers each; larger fleets span processes (--first-node)


def check_rate(rate: float) -> float:
    """``rate`` if it is a sampling rate the simulator supports, else a ConfigError."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ConfigError("rate", f"{rate:g} Hz is outside {MIN_RATE:g}-{MAX_RATE:g} Hz")
    return rate


@dataclass(frozen=True)
class FleetSpec:
    """What to simulate. ``readings`` is per device; ``None`` means endless."""

    nodes: int = 1
    devices: int = 1
    rate: float = 10.0
    frame_size: int = 10
    readings: int | None = None
    seed: int = 0
    start: float = 0.0
    first_node: int = 0
    behaviours: tuple[Behaviour, ...] = ()

    def __post_init__(self) -> None:
        for key, value, lo in (
            ("nodes", self.nodes, 1),
            ("devices", self.devices, 1),
            ("frame-size", self.frame_size, 1),
            ("seed", self.seed, 0),
            ("first-node", self.first_node, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise ConfigError(key, f"{value!r} must be an integer >= {lo}")
        if self.frame_size > MAX_FRAME_SIZE:
            raise ConfigError("frame-size", f"{self.frame_size} exceeds {MAX_FRAME_SIZE}")
        if self.nodes * self.devices > MAX_DEVICES:
            raise ConfigError("devices", f"{self.nodes} x {self.devices} exceeds {MAX_DEVICES}")
        check_rate(self.rate)
        if self.readings is not None and self.readings < 1:
            raise ConfigError("duration", "must cover at least one reading")
        if not math.isfinite(self.start):
            raise ConfigError("start", f"{self.start!r} is not a time")

    @property
    def node_ids(self) -> list[str]:
        return [f"node-{self.first_node + i}" for i in range(self.nodes)]

    @property
    def device_ids(self) -> list[str]:
        return [f"pump-{j}" for j in range(self.devices)]

    def timestamp(self, index: int) -> float:
        """Time of reading ``index`` of every device, in seconds since the Unix epoch."""
        return self.start + index / self.rate


class DeviceSignal:
    """One device's readings and labels, chunk by chunk: the pump model plus its behaviours."""

    def __init__(self, model: PumpModel, schedule: DeviceSchedule) -> None:
        self.model = model
        self.schedule = schedule
        self._held: tuple[int, NDArray[np.float32]] | None = None

    def base(self, k: int) -> NDArray[np.float32]:
        """Chunk ``k`` with drifts applied and no anomalies (what a healthy sensor would read)."""
        values = self.model.chunk(k)
        self.schedule.apply_drifts(values, k * CHUNK, self.model.levels)
        return values

    def chunk(self, k: int) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
        """Chunk ``k`` as published: float32 readings and their uint8 label columns."""
        values = self.base(k)
        labels = np.zeros((CHUNK, len(LABEL_NAMES)), np.uint8)
        self.schedule.apply_anomalies(values, labels, k * CHUNK, self.model.levels, self._at)
        return values, labels

    def _at(self, index: int) -> NDArray[np.float32]:
        k = index // CHUNK
        if self._held is None or self._held[0] != k:
            self._held = (k, self.base(k))
        row: NDArray[np.float32] = self._held[1][index % CHUNK]
        return row


class _Cursor:
    """Cuts one device's chunks into frames: a buffer of ready readings, refilled by chunks."""

    def __init__(self, node: str, device: str, signal: DeviceSignal) -> None:
        self.node = node
        self.device = device
        self.signal = signal
        self.values: NDArray[np.float32] = np.empty((0, len(CHANNELS)), np.float32)
        self.labels: NDArray[np.uint8] = np.empty((0, len(LABEL_NAMES)), np.uint8)
        self.first = 0  # reading index of buffer row 0
        self.labelled = False  # any non-zero label in the buffer

    def take(self, index: int, rows: int) -> tuple[NDArray[np.float32], NDArray[np.uint8] | None]:
        if index + rows > self.first + len(self.values):
            self._refill(index, index + rows)
        a = index - self.first
        values = self.values[a : a + rows]
        if not self.labelled:
            return values, None
        labels = self.labels[a : a + rows]
        return values, labels if labels.any() else None

    def _refill(self, index: int, end: int) -> None:
        # New arrays every time, never writes into old ones: frames already yielded keep views.
        values, labels = [self.values[index - self.first :]], [self.labels[index - self.first :]]
        ready = self.first + len(self.values)
        while ready < end:
            chunk_values, chunk_labels = self.signal.chunk(ready // CHUNK)
            values.append(chunk_values)
            labels.append(chunk_labels)
            ready += CHUNK
        self.values = np.concatenate(values)
        self.labels = np.concatenate(labels)
        self.values.flags.writeable = False
        self.labels.flags.writeable = False
        self.first = index
        self.labelled = bool(self.labels.any())


class Fleet:
    """The simulated devices of a ``FleetSpec`` and the frames they produce."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        self.signals: dict[tuple[str, str], DeviceSignal] = {}
        for i, node in enumerate(spec.node_ids):
            number = spec.first_node + i
            for j, device in enumerate(spec.device_ids):
                model = PumpModel(spec.seed, number, j, spec.rate)
                schedule = DeviceSchedule(
                    spec.behaviours,
                    seed=spec.seed,
                    node=(number, node),
                    device=(j, device),
                    rate=spec.rate,
                )
                self.signals[node, device] = DeviceSignal(model, schedule)
        for behaviour in spec.behaviours:
            if not any(matches(behaviour.target, n, d) for n, d in self.signals):
                raise ConfigError(
                    "device",
                    f"{behaviour.target!r} selects no device of this fleet "
                    f"({spec.node_ids[0]}..{spec.node_ids[-1]} x "
                    f"{spec.device_ids[0]}..{spec.device_ids[-1]})",
                )

    @property
    def total_readings(self) -> int | None:
        """Readings of all devices together, or None when endless."""
        if self.spec.readings is None:
            return None
        return self.spec.readings * len(self.signals)

    def frames(self) -> Iterator[tuple[str, SensorFrame, LabelFrame | None]]:
        """Every frame of every device, in time order (see the module docstring)."""
        spec = self.spec
        cursors = [_Cursor(n, d, signal) for (n, d), signal in self.signals.items()]
        period = 1.0 / spec.rate
        index = seq = 0
        while spec.readings is None or index < spec.readings:
            rows = (
                spec.frame_size
                if spec.readings is None
                else min(spec.frame_size, spec.readings - index)
            )
            t0 = spec.timestamp(index)
            for cursor in cursors:
                values, labels = cursor.take(index, rows)
                frame = SensorFrame(cursor.device, seq, CHANNELS, values, t0=t0, period=period)
                label_frame = None
                if labels is not None:
                    label_frame = LabelFrame(
                        cursor.device, seq, LABEL_NAMES, labels, t0=t0, period=period
                    )
                yield cursor.node, frame, label_frame
            index += rows
            seq += 1

    def events(self, published: Mapping[tuple[str, str], int] | None = None) -> list[LabelEvent]:
        """Ground truth: every scheduled behaviour per device, in schedule order.

        With ``published`` (readings sent per ``(node, device)``), only behaviours that started
        within what was sent are listed, each cut at the last reading sent.
        """
        spec = self.spec
        out = []
        for (node, device), signal in self.signals.items():
            sent = None if published is None else published.get((node, device), 0)
            for item in signal.schedule.items:
                if sent is not None and item.start >= sent:
                    continue
                stop = item.stop if sent is None else min(item.stop, sent)
                b = item.behaviour
                if isinstance(b, Anomaly):
                    kind, code, magnitude, scale, shift = (
                        b.kind.label,
                        b.kind.value,
                        b.strength,
                        None,
                        None,
                    )
                else:
                    kind, code, magnitude, scale, shift = "drift", 0, None, b.scale, b.shift
                out.append(
                    LabelEvent(
                        node=node,
                        device=device,
                        kind=kind,
                        code=code,
                        channel="+".join(b.affected),
                        start=spec.timestamp(item.start),
                        end=spec.timestamp(stop),
                        start_index=item.start,
                        end_index=stop,
                        magnitude=magnitude,
                        scale=scale,
                        shift=shift,
                    )
                )
        return out
