"""The physical signal model of one industrial pump: six correlated channels, deterministic.

A pump's *load* (the fraction of its rated duty it runs at) drives everything else, as it does
on a real machine::

    load(t)      = mean + process cycle (5-30 min) + slow variation (1-4 h) + daily cycle (24 h)
    flow         = rated flow x load                          (affinity law, Q ~ speed)
    pressure     = head x (0.35 + 0.65 load^2)                (system curve)
    current      = rated current x (0.3 + 0.7 load^2)         (no-load current + hydraulic power)
    vibration    = baseline x (0.5 + 0.5 load^2), log-normal noise (RMS is never negative)
    temperature  = ambient (daily swing) + rise x load seen through a first-order thermal lag
    voltage      = supply x (1 - line sag x current / rated current): nearly constant, small sags

On top of the slow load there is a fast shared jitter (turbulence), so current, flow, pressure
and vibration move together from reading to reading, and independent sensor noise per channel.

The load is a sum of sinusoids, so the thermal lag has a closed form (each component is
attenuated by ``1 / sqrt(1 + (w tau)^2)`` and delayed by ``atan(w tau) / w``). Every value is
therefore a pure function of ``(seed, node, device, reading index, rate)``: readings are made in
fixed chunks of ``CHUNK`` whose noise comes from a counter-based generator addressed by the
chunk number, so any chunk can be generated on its own and the frame size never changes a value.
Generation is vectorised per chunk in float32 (the wire's dtype), about 0.2 us per reading.

Operating points are drawn per node (the *site*: climate, grid voltage, shift pattern, duty) and
per device (pump size, mounting, wear), so data differs across nodes: it is non-IID by design.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

CHANNELS: Final = ("vibration_rms", "current", "pressure", "temperature", "flow", "voltage")
UNITS: Final = ("mm/s", "A", "bar", "degC", "m3/h", "V")
VIBRATION, CURRENT, PRESSURE, TEMPERATURE, FLOW, VOLTAGE = range(6)
CHUNK: Final = 1024
"""Readings generated at once per device; fixed, because the noise of a chunk is seeded by its
number. Changing it changes every value after the first chunk (and is a new data set)."""

DAY_S: Final = 86_400.0
TAU: Final = 2.0 * math.pi
# Domain tags keep the seed sequences of sites, devices, chunks and events apart (numpy's
# SeedSequence pads short entropy with zeros, so [s, 1] and [s, 1, 0] would otherwise collide).
SITE_TAG: Final = 1
DEVICE_TAG: Final = 2
NOISE_TAG: Final = 3
EVENT_TAG: Final = 4
# Relative noise std per channel (vibration's is the sigma of a log-normal factor).
_NOISE: Final = (0.08, 0.01, 0.012, 0.0, 0.015, 0.001)
_TEMP_NOISE_C: Final = 0.05
_JITTER: Final = 0.015  # std of the fast load jitter shared by the hydraulic channels
_INDEX: Final = np.arange(CHUNK, dtype=np.float32)


@dataclass(frozen=True)
class Wave:
    """One sinusoidal component of the load: amplitude (fraction of duty), period, phase."""

    amplitude: float
    period_s: float
    phase: float

    @property
    def omega(self) -> float:
        return TAU / self.period_s


@dataclass(frozen=True)
class OperatingPoint:
    """One pump's nominal behaviour, drawn from the seed: what makes a fleet non-IID."""

    rated_current_a: float
    rated_flow_m3h: float
    head_bar: float
    vibration_mm_s: float
    ambient_c: float
    ambient_swing_c: float
    temp_rise_c: float
    thermal_tau_s: float
    supply_v: float
    line_sag: float
    load_mean: float
    waves: tuple[Wave, ...]
    daily_phase: float

    @classmethod
    def draw(cls, seed: int, node: int, device: int) -> OperatingPoint:
        """The operating point of device ``device`` of node ``node`` in the fleet of ``seed``."""
        site = np.random.default_rng([seed, SITE_TAG, node])
        dev = np.random.default_rng([seed, DEVICE_TAG, node, device])
        # Site: climate, grid, shift pattern (phase of the daily cycle), typical duty.
        ambient = site.uniform(12.0, 35.0)
        supply = site.choice([380.0, 400.0, 415.0]) * site.uniform(0.99, 1.01)
        daily_phase = site.uniform(0.0, TAU)
        site_duty = site.uniform(0.55, 0.75)
        # Device: size class, mounting and wear, where it sits in the process.
        size = dev.uniform(0.0, 1.0)
        waves = (
            Wave(dev.uniform(0.04, 0.10), dev.uniform(300.0, 1800.0), dev.uniform(0, TAU)),
            Wave(dev.uniform(0.02, 0.06), dev.uniform(3600.0, 14400.0), dev.uniform(0, TAU)),
            Wave(dev.uniform(0.05, 0.12), DAY_S, daily_phase + dev.normal(0.0, 0.2)),
        )
        return cls(
            rated_current_a=10.0 + 50.0 * size,
            rated_flow_m3h=20.0 + 180.0 * size * dev.uniform(0.8, 1.2),
            head_bar=dev.uniform(2.0, 8.0),
            vibration_mm_s=dev.uniform(1.0, 4.0),
            ambient_c=ambient,
            ambient_swing_c=site.uniform(2.0, 6.0),
            temp_rise_c=dev.uniform(20.0, 40.0),
            thermal_tau_s=dev.uniform(120.0, 900.0),
            supply_v=float(supply),
            line_sag=dev.uniform(0.005, 0.02),
            load_mean=float(np.clip(site_duty + dev.normal(0.0, 0.05), 0.45, 0.8)),
            waves=waves,
            daily_phase=daily_phase,
        )


class PumpModel:
    """Generates the readings of one pump, chunk by chunk, at ``rate`` readings per second."""

    def __init__(self, seed: int, node: int, device: int, rate: float) -> None:
        self.seed = seed
        self.node = node
        self.device = device
        self.rate = rate
        self.point = p = OperatingPoint.draw(seed, node, device)
        self.levels = self._levels()
        # Seven sinusoids: the three load waves, the same three behind the thermal lag, and the
        # lagged daily ambient swing. ``_mix`` turns them into (load, temperature) deviations.
        lags = [math.atan(w.omega * p.thermal_tau_s) for w in p.waves]
        day = TAU / DAY_S
        day_lag = math.atan(day * p.thermal_tau_s)
        self._omega = np.array([w.omega for w in p.waves] * 2 + [day])
        self._phase = np.array(
            [w.phase for w in p.waves]
            + [w.phase - lag for w, lag in zip(p.waves, lags, strict=True)]
            + [p.daily_phase - day_lag]
        )
        self._step = (self._omega / rate).astype(np.float32)
        attenuated = [
            p.temp_rise_c * w.amplitude / math.hypot(1.0, w.omega * p.thermal_tau_s)
            for w in p.waves
        ]
        self._mix = np.array(
            [
                [w.amplitude for w in p.waves] + [0.0] * 4,
                [0.0] * 3 + attenuated + [p.ambient_swing_c],
            ],
            np.float32,
        )
        self._key = np.random.SeedSequence([seed, NOISE_TAG, node, device]).generate_state(
            2, np.uint64
        )

    def _levels(self) -> NDArray[np.float64]:
        """Each channel's value at the mean load: the unit that anomaly magnitudes scale."""
        p, load = self.point, self.point.load_mean
        current = p.rated_current_a * (0.3 + 0.7 * load**2)
        return np.array(
            [
                p.vibration_mm_s * (0.5 + 0.5 * load**2),
                current,
                p.head_bar * (0.35 + 0.65 * load**2),
                p.ambient_c + p.temp_rise_c * load,
                p.rated_flow_m3h * load,
                p.supply_v * (1.0 - p.line_sag * current / p.rated_current_a),
            ]
        )

    def noise(self, k: int) -> NDArray[np.float32]:
        """Seven rows of standard normal noise for chunk ``k``.

        Philox is counter-based, so chunk ``k`` is addressed directly (counter ``k``) without
        generating what comes before it. Uniform 16-bit draws go through a table of the normal
        quantiles: Gaussian noise quantised to 65,536 levels and bounded at +-4.3 sigma (normal
        data never holds an accidental outlier), at a third of the cost of numpy's normals.
        """
        bits = np.random.Philox(counter=[0, k, 0, 0], key=self._key)
        draws = bits.random_raw(7 * CHUNK // 4).view(np.uint16)
        return _normal_table()[draws].reshape(7, CHUNK)

    def chunk(self, k: int) -> NDArray[np.float32]:
        """Readings ``k * CHUNK`` to ``(k + 1) * CHUNK - 1`` as a ``CHUNK x 6`` float32 block."""
        p = self.point
        # Phases at the chunk's first reading are reduced in float64; float32 then suffices for
        # the chunk itself (its sine is several times faster).
        first = np.remainder(self._omega * (k * CHUNK / self.rate) + self._phase, TAU)
        phase = first.astype(np.float32)[:, None] + self._step[:, None] * _INDEX
        load_wave, temp_wave = self._mix @ np.sin(phase)
        noise = self.noise(k)

        load = p.load_mean + load_wave
        fast = load * (1.0 + _JITTER * noise[6])  # turbulence shared by the hydraulic channels
        fast2 = fast * fast
        out = np.empty((6, CHUNK), np.float32)
        out[VIBRATION] = p.vibration_mm_s * (0.5 + 0.5 * fast2) * np.exp(_NOISE[0] * noise[0])
        out[CURRENT] = p.rated_current_a * (0.3 + 0.7 * fast2) * (1.0 + _NOISE[1] * noise[1])
        out[PRESSURE] = p.head_bar * (0.35 + 0.65 * fast2) * (1.0 + _NOISE[2] * noise[2])
        out[TEMPERATURE] = (
            p.ambient_c + p.temp_rise_c * p.load_mean + temp_wave + _TEMP_NOISE_C * noise[3]
        )
        out[FLOW] = p.rated_flow_m3h * fast * (1.0 + _NOISE[4] * noise[4])
        sag = 1.0 - p.line_sag * out[CURRENT] / p.rated_current_a
        out[VOLTAGE] = p.supply_v * sag * (1.0 + _NOISE[5] * noise[5])
        return np.ascontiguousarray(out.T)


@functools.cache
def _normal_table() -> NDArray[np.float32]:
    """Standard normal quantiles at the 65,536 midpoints ``(i + 0.5) / 65536``."""
    normal = statistics.NormalDist()
    return np.array([normal.inv_cdf((i + 0.5) / 65536) for i in range(65536)], np.float32)
