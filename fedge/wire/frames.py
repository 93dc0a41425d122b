"""Sensor and label frames: time-stamped blocks of rows published by devices.

Time is either regular (``t0`` plus a ``period``) or an explicit timestamps vector; both frame
kinds share the timing checks below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from fedge.errors import WireError
from fedge.wire._base import F4, F8, LIMITS, U1, ValueEquality
from fedge.wire._fields import FieldReader, check_ident, check_int, check_names, encode_array


def _check_timing(
    t0: float, period: float | None, timestamps: NDArray[np.float64] | None, rows: int
) -> None:
    if not math.isfinite(t0):
        raise WireError("t0", f"{t0} is not finite")
    if (period is None) == (timestamps is None):
        raise WireError("period", "give exactly one of period or timestamps")
    if period is not None and not (math.isfinite(period) and period > 0):
        raise WireError("period", f"{period} must be a positive finite number of seconds")
    if timestamps is not None:
        if timestamps.dtype != np.float64 or timestamps.shape != (rows,):
            raise WireError(
                "timestamps",
                f"expected float64 of shape ({rows},), got {timestamps.dtype} {timestamps.shape}",
            )
        if not np.isfinite(timestamps).all():
            raise WireError("timestamps", "contains NaN or infinity")
        if rows and (timestamps[0] != t0 or bool(np.any(np.diff(timestamps) < 0))):
            raise WireError("timestamps", "must start at t0 and never decrease")


@dataclass(frozen=True, eq=False)
class SensorFrame(ValueEquality):
    """A batch of ``n`` readings of ``c`` channels from one device.

    Time is ``t0 + i * period`` for regular sampling, or an explicit float64 ``timestamps``
    vector (seconds since the Unix epoch). ``seq`` increases by one per frame and lets the
    receiver detect loss, duplicates and reordering.
    """

    KIND: ClassVar[str] = "sensor_frame"

    device: str
    seq: int
    channels: tuple[str, ...]
    values: NDArray[np.float32]
    t0: float
    period: float | None = None
    timestamps: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        check_ident("device", "device", self.device)
        check_int("seq", self.seq, lo=0)
        if self.values.dtype != np.float32 or self.values.ndim != 2:
            raise WireError(
                "values", f"expected 2-D float32, got {self.values.dtype} {self.values.shape}"
            )
        check_names("channels", self.channels, LIMITS)
        rows, cols = self.values.shape
        if cols != len(self.channels):
            raise WireError("values", f"has {cols} columns for {len(self.channels)} channels")
        if rows == 0:
            raise WireError("values", "a frame holds at least one reading")
        if not np.isfinite(self.values).all():
            raise WireError("values", "contains NaN or infinity")
        _check_timing(self.t0, self.period, self.timestamps, rows)

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])

    def times(self) -> NDArray[np.float64]:
        """Timestamp of every row, in seconds since the Unix epoch."""
        if self.timestamps is not None:
            return self.timestamps
        assert self.period is not None  # noqa: S101  # guaranteed by __post_init__
        return self.t0 + self.period * np.arange(self.rows, dtype=np.float64)

    def to_fields(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "seq": self.seq,
            "channels": list(self.channels),
            "values": encode_array(self.values),
            "t0": self.t0,
            "period": self.period,
            "timestamps": None if self.timestamps is None else encode_array(self.timestamps),
        }

    @classmethod
    def from_fields(cls, r: FieldReader) -> Self:
        return cls(
            device=r.ident("device", "device"),
            seq=r.integer("seq", lo=0),
            channels=r.names("channels"),
            values=r.array("values", F4, ndim=2),  # type: ignore[arg-type]
            t0=r.number("t0"),
            period=r.opt_number("period"),
            timestamps=r.opt_array("timestamps", F8, ndim=1),  # type: ignore[arg-type]
        )


@dataclass(frozen=True, eq=False)
class LabelFrame(ValueEquality):
    """Ground-truth labels for the rows of the sensor frame with the same device and ``seq``.

    ``values`` is an ``n x k`` uint8 block, one column per name (for example ``anomaly`` and
    ``changepoint`` for SKAB). Published for evaluation only; edge nodes never read labels.
    """

    KIND: ClassVar[str] = "label_frame"

    device: str
    seq: int
    names: tuple[str, ...]
    values: NDArray[np.uint8]
    t0: float
    period: float | None = None
    timestamps: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        check_ident("device", "device", self.device)
        check_int("seq", self.seq, lo=0)
        if self.values.dtype != np.uint8 or self.values.ndim != 2:
            raise WireError(
                "values", f"expected 2-D uint8, got {self.values.dtype} {self.values.shape}"
            )
        check_names("names", self.names, LIMITS)
        rows, cols = self.values.shape
        if cols != len(self.names):
            raise WireError("values", f"has {cols} columns for {len(self.names)} names")
        if rows == 0:
            raise WireError("values", "a frame holds at least one row")
        _check_timing(self.t0, self.period, self.timestamps, rows)

    def to_fields(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "seq": self.seq,
            "names": list(self.names),
            "values": encode_array(self.values),
            "t0": self.t0,
            "period": self.period,
            "timestamps": None if self.timestamps is None else encode_array(self.timestamps),
        }

    @classmethod
    def from_fields(cls, r: FieldReader) -> Self:
        return cls(
            device=r.ident("device", "device"),
            seq=r.integer("seq", lo=0),
            names=r.names("names"),
            values=r.array("values", U1, ndim=2),  # type: ignore[arg-type]
            t0=r.number("t0"),
            period=r.opt_number("period"),
            timestamps=r.opt_array("timestamps", F8, ndim=1),  # type: ignore[arg-type]
        )
