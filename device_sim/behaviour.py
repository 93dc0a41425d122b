"""Injected behaviour: anomalies and drift, scheduled per device, applied to blocks of readings.

An ``Anomaly`` is a bounded fault that an edge node should flag; a ``Drift`` is a sustained
change of a channel's level or scale (a recalibration, a new impeller after maintenance) that a
node should adapt to rather than alarm on. Both are scheduled in data time (seconds after the
first reading) and turned into reading-index windows for one device by ``DeviceSchedule``.

Ground truth travels as two uint8 label columns, ``LABEL_NAMES``:

- ``anomaly``: the ``Kind`` code of the anomaly affecting the reading, 0 when normal. Where
  anomalies overlap, the one scheduled later wins.
- ``drift``: 1 while a drift is being established (its transition window, at least one
  reading); after that the drifted level is the new normal and is labelled 0.

==== ========== ===================== ==========================================================
code kind       default channels      effect (``m`` = magnitude, ``L`` = the channel's level)
==== ========== ===================== ==========================================================
1    spike      vibration_rms         ``+ m L`` (default m 0.5) for one reading unless ``for``
2    step       pressure              ``+ m L`` over the window (default m 0.2)
3    ramp       temperature           rise from 0 to ``+ m L`` across the window, then gone
                                      (default m 0.3)
4    stuck      temperature           holds the value of the reading just before the window
5    dropout    all                   reads 0.0 (the wire carries no NaN, so a dead sensor
                                      reports zero)
6    noise      vibration_rms         ``+ m L N(0, 1)``: a burst of extra noise (default m 0.1)
7    cavitation vibration_rms,        oscillation with a 10-reading period, ``s = sin(..)``:
                pressure, flow        vibration ``+ m L (1 + 0.5 s)``, flow ``- m L (0.5 + 0.2
                                      s)``, any other channel ``+ 0.5 m L s`` (default m 0.3)
==== ========== ===================== ==========================================================

Anomalies last 10 s unless ``for`` says otherwise (a spike: one reading). A drift has no default
channel: it always names the channels it changes.

``L`` is the channel's value at the device's mean load (``PumpModel.levels``), so one magnitude
means the same on a 10 A and a 60 A pump. A drift multiplies the channel by ``scale`` and adds
``shift x L``, reached linearly over ``over`` seconds, and stays for the rest of the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from fnmatch import fnmatchcase
from typing import Final

import numpy as np
from numpy.typing import NDArray

from device_sim.pump import CHANNELS, EVENT_TAG, FLOW, TAU, VIBRATION
from fedge.errors import ConfigError

LABEL_NAMES: Final = ("anomaly", "drift")
ANOMALY_COLUMN, DRIFT_COLUMN = 0, 1
MAX_FACTOR: Final = 1000.0  # largest |magnitude|, |scale| or |shift|
MAX_TIME_S: Final = 1e9  # about 30 years: any later start is a typo
CAVITATION_PERIOD: Final = 10  # readings: an oscillation visible at any sampling rate


class Kind(IntEnum):
    """Anomaly kinds; the value is the code in the ``anomaly`` label column (0 is normal)."""

    SPIKE = 1
    STEP = 2
    RAMP = 3
    STUCK = 4
    DROPOUT = 5
    NOISE = 6
    CAVITATION = 7

    @property
    def label(self) -> str:
        return self.name.lower()


# Stuck and dropout have no size: they replace the reading.
DEFAULT_MAGNITUDE: Final = {
    Kind.SPIKE: 0.5,
    Kind.STEP: 0.2,
    Kind.RAMP: 0.3,
    Kind.NOISE: 0.1,
    Kind.CAVITATION: 0.3,
}
DEFAULT_DURATION_S: Final = 10.0  # every kind but spike, which lasts one reading by default
# What each kind does to a pump unless told otherwise: a knock, a clogged line, a bearing
# heating up, a frozen or dead sensor, a loose mount, cavitation.
DEFAULT_CHANNELS: Final[dict[Kind, tuple[str, ...]]] = {
    Kind.SPIKE: ("vibration_rms",),
    Kind.STEP: ("pressure",),
    Kind.RAMP: ("temperature",),
    Kind.STUCK: ("temperature",),
    Kind.DROPOUT: CHANNELS,
    Kind.NOISE: ("vibration_rms",),
    Kind.CAVITATION: ("vibration_rms", "pressure", "flow"),
}


def _check_target(target: str) -> None:
    if not target or target.count("/") > 1:
        raise ConfigError("device", f"{target!r} is not NODE/DEVICE, DEVICE or '*' (globs allowed)")


def _check_channels(channels: tuple[str, ...]) -> None:
    if not channels:
        raise ConfigError("channel", "names no channel")
    for name in channels:
        if name not in CHANNELS:
            raise ConfigError("channel", f"{name!r} is not a channel ({', '.join(CHANNELS)})")


def _check_time(key: str, value: float, *, positive: bool = False) -> None:
    if not 0 <= value <= MAX_TIME_S or (positive and value == 0):
        sign = "positive" if positive else "non-negative"
        raise ConfigError(key, f"{value!r} must be a {sign} number of seconds up to {MAX_TIME_S:g}")


def _check_factor(key: str, value: float) -> None:
    # Bounded so that no level times a factor overflows float32 on the wire.
    if not abs(value) <= MAX_FACTOR:
        raise ConfigError(key, f"{value!r} is not a number within +-{MAX_FACTOR:g}")


def matches(target: str, node: str, device: str) -> bool:
    """True if the target pattern (``node/device``, ``device`` for any node, ``*``) selects it."""
    if target == "*":
        return True
    pattern = target if "/" in target else f"*/{target}"
    return fnmatchcase(f"{node}/{device}", pattern)


@dataclass(frozen=True)
class Anomaly:
    """A bounded fault on some channels of the devices ``target`` selects."""

    kind: Kind
    at_s: float
    for_s: float | None = None  # None: one reading for a spike, DEFAULT_DURATION_S otherwise
    channels: tuple[str, ...] = ()  # empty: the kind's DEFAULT_CHANNELS
    magnitude: float | None = None  # None: DEFAULT_MAGNITUDE[kind]; stuck and dropout take none
    target: str = "*"

    def __post_init__(self) -> None:
        _check_time("at", self.at_s)
        if self.for_s is not None:
            _check_time("for", self.for_s, positive=True)
        if self.channels:
            _check_channels(self.channels)
        if self.magnitude is not None:
            if self.kind not in DEFAULT_MAGNITUDE:
                raise ConfigError("magnitude", f"{self.kind.label} takes no magnitude")
            _check_factor("magnitude", self.magnitude)
        _check_target(self.target)

    @property
    def affected(self) -> tuple[str, ...]:
        return self.channels or DEFAULT_CHANNELS[self.kind]

    @property
    def strength(self) -> float | None:
        """The magnitude in effect, None for kinds without one."""
        return DEFAULT_MAGNITUDE.get(self.kind) if self.magnitude is None else self.magnitude

    def window(self, rate: float) -> tuple[int, int]:
        """The readings ``[start, stop)`` it covers at ``rate`` (at least one)."""
        start = round(self.at_s * rate)
        if self.for_s is None:
            length = 1 if self.kind is Kind.SPIKE else round(DEFAULT_DURATION_S * rate)
        else:
            length = round(self.for_s * rate)
        return start, start + max(1, length)


@dataclass(frozen=True)
class Drift:
    """A sustained change: ``x * scale + shift * level``, reached over ``over_s`` seconds."""

    at_s: float
    channels: tuple[str, ...]
    scale: float = 1.0
    shift: float = 0.0
    over_s: float = 0.0
    target: str = "*"

    def __post_init__(self) -> None:
        _check_time("at", self.at_s)
        _check_time("over", self.over_s)
        _check_channels(self.channels)
        _check_factor("scale", self.scale)
        _check_factor("shift", self.shift)
        if self.scale == 1.0 and self.shift == 0.0:
            raise ConfigError("scale", "a drift needs scale != 1 or shift != 0")
        _check_target(self.target)

    @property
    def affected(self) -> tuple[str, ...]:
        return self.channels

    def window(self, rate: float) -> tuple[int, int]:
        """The transition ``[start, stop)``; the full change holds from ``stop`` on."""
        start = round(self.at_s * rate)
        return start, start + max(1, round(self.over_s * rate))


Behaviour = Anomaly | Drift
HeldValue = Callable[[int], NDArray[np.float32]]
"""Returns the drifted, anomaly-free reading at an index (for a stuck sensor's frozen value)."""


@dataclass(frozen=True)
class Scheduled:
    """One behaviour placed on one device: its number in the schedule and its reading window."""

    number: int
    behaviour: Behaviour
    start: int
    stop: int
    columns: list[int]


class DeviceSchedule:
    """The behaviours that apply to one device, as reading windows, applied block by block."""

    def __init__(
        self,
        behaviours: tuple[Behaviour, ...],
        *,
        seed: int,
        node: tuple[int, str],
        device: tuple[int, str],
        rate: float,
    ) -> None:
        self.seed = seed
        self.node_index, self.node = node
        self.device_index, self.device = device
        self.items: list[Scheduled] = []
        for number, behaviour in enumerate(behaviours):
            if matches(behaviour.target, self.node, self.device):
                start, stop = behaviour.window(rate)
                columns = [CHANNELS.index(c) for c in behaviour.affected]
                self.items.append(Scheduled(number, behaviour, start, stop, columns))
        self.drifts = [s for s in self.items if isinstance(s.behaviour, Drift)]
        self.anomalies = [s for s in self.items if isinstance(s.behaviour, Anomaly)]

    def apply_drifts(
        self, values: NDArray[np.float32], first: int, levels: NDArray[np.float64]
    ) -> None:
        """Apply every drift to ``values`` (readings ``first`` onwards) in place."""
        n = len(values)
        for item in self.drifts:
            drift = item.behaviour
            assert isinstance(drift, Drift)  # noqa: S101  # self.drifts holds drifts only
            if item.start >= first + n:
                continue
            index = np.arange(first, first + n, dtype=np.float64)
            done = np.clip((index - item.start + 1) / (item.stop - item.start), 0.0, 1.0)
            cols = item.columns
            values[:, cols] *= 1.0 + (drift.scale - 1.0) * done[:, None]
            values[:, cols] += drift.shift * levels[cols] * done[:, None]

    def apply_anomalies(
        self,
        values: NDArray[np.float32],
        labels: NDArray[np.uint8],
        first: int,
        levels: NDArray[np.float64],
        held: HeldValue,
    ) -> None:
        """Apply every anomaly to ``values`` in place and write the label columns."""
        n = len(values)
        for item in self.drifts:
            lo, hi = max(item.start, first), min(item.stop, first + n)
            if lo < hi:
                labels[lo - first : hi - first, DRIFT_COLUMN] = 1
        for item in self.anomalies:
            lo, hi = max(item.start, first), min(item.stop, first + n)
            if lo >= hi:
                continue
            anomaly = item.behaviour
            assert isinstance(anomaly, Anomaly)  # noqa: S101  # self.anomalies holds anomalies
            position = np.arange(lo - item.start, hi - item.start, dtype=np.float64)
            block = values[lo - first : hi - first]  # a view: changes land in values
            self._apply(item, anomaly, block, position, levels=levels, held=held)
            labels[lo - first : hi - first, ANOMALY_COLUMN] = anomaly.kind.value

    def _apply(
        self,
        item: Scheduled,
        anomaly: Anomaly,
        block: NDArray[np.float32],
        position: NDArray[np.float64],
        *,
        levels: NDArray[np.float64],
        held: HeldValue,
    ) -> None:
        cols = item.columns
        size = (anomaly.strength or 0.0) * levels[cols]  # unused by stuck and dropout
        match anomaly.kind:
            case Kind.SPIKE | Kind.STEP:
                block[:, cols] += size
            case Kind.RAMP:
                block[:, cols] += size * ((position + 1) / (item.stop - item.start))[:, None]
            case Kind.STUCK:
                block[:, cols] = held(max(item.start - 1, 0))[cols]
            case Kind.DROPOUT:
                block[:, cols] = 0.0
            case Kind.NOISE:
                # Seeded by the event and the block's offset in it: independent of frame size.
                rng = np.random.default_rng(
                    [
                        self.seed,
                        EVENT_TAG,
                        self.node_index,
                        self.device_index,
                        item.number,
                        int(position[0]),
                    ]
                )
                block[:, cols] += size * rng.standard_normal((len(position), len(cols)))
            case Kind.CAVITATION:
                wave = np.sin(TAU * position / CAVITATION_PERIOD)
                for col, level in zip(cols, size, strict=True):
                    if col == VIBRATION:
                        block[:, col] += level * (1.0 + 0.5 * wave)
                    elif col == FLOW:
                        block[:, col] -= level * (0.5 + 0.2 * wave)
                    else:
                        block[:, col] += 0.5 * level * wave
