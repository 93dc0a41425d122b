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


class _TimedBlock(ValueEquality):
    """What sensor and label frames share: a device, a sequence number, an ``n x k`` block
    of named columns, and the time of each row."""

    device: str
    seq: int
    values: NDArray[Any]
    t0: float
    period: float | None
    timestamps: NDArray[np.float64] | None

    def _check_block(self, names_field: str, names: tuple[str, ...], dtype: type) -> int:
        """Validate everything but finiteness; return the number of rows."""
        check_ident("device", "device", self.device)
        check_int("seq", self.seq, lo=0)
        expected = np.dtype(dtype)
        if self.values.dtype != expected or self.values.ndim != 2:
            raise WireError(
                "values", f"expected 2-D {expected}, got {self.values.dtype} {self.values.shape}"
            )
        check_names(names_field, names, LIMITS)
        rows, cols = self.values.shape
        if cols != len(names):
            raise WireError("values", f"has {cols} columns for {len(names)} {names_field}")
        if rows == 0:
            raise WireError("values", "a frame holds at least one row")
        _check_timing(self.t0, self.period, self.timestamps, rows)
        return int(rows)

    def _block_fields(self, names_field: str, names: tuple[str, ...]) -> dict[str, Any]:
        return {
            "device": self.device,
            "seq": self.seq,
            names_field: list(names),
            "values": encode_array(self.values),
            "t0": self.t0,
            "period": self.period,
            "timestamps": None if self.timestamps is None else encode_array(self.timestamps),
        }


def _read_block(r: FieldReader, names_field: str, dtypes: frozenset[str]) -> dict[str, Any]:
    return {
        "device": r.ident("device", "device"),
        "seq": r.integer("seq", lo=0),
        names_field: r.names(names_field),
        "values": r.array("values", dtypes, ndim=2),
        "t0": r.number("t0"),
        "period": r.opt_number("period"),
        "timestamps": r.opt_array("timestamps", F8, ndim=1),
    }


@dataclass(frozen=True, eq=False)
class SensorFrame(_TimedBlock):
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
        self._check_block("channels", self.channels, np.float32)
        if not np.isfinite(self.values).all():
            raise WireError("values", "contains NaN or infinity")

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
        return self._block_fields("channels", self.channels)

    @classmethod
    def from_fields(cls, r: FieldReader) -> Self:
        return cls(**_read_block(r, "channels", F4))


@dataclass(frozen=True, eq=False)
class LabelFrame(_TimedBlock):
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
        self._check_block("names", self.names, np.uint8)

    def to_fields(self) -> dict[str, Any]:
        return self._block_fields("names", self.names)

    @classmethod
    def from_fields(cls, r: FieldReader) -> Self:
        return cls(**_read_block(r, "names", U1))
