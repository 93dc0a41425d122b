"""The messages fedge components exchange, as frozen values.

Each class declares its wire ``KIND``, turns itself into a msgpack-ready map (``to_fields``) and
is rebuilt from a validated map (``from_fields``). Invariants that involve several fields (shape
against channel names, timestamps against rows) are checked in ``__post_init__`` so that a
message built in code is held to the same rules as one that arrived from the network.

Arrays in decoded messages are read-only views on the payload bytes: no copy on the hot path.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final, Self

import numpy as np
from numpy.typing import NDArray

from fedge.errors import WireError
from fedge.wire._fields import (
    MAX_NDIM,
    FieldReader,
    Plain,
    WireLimits,
    check_float,
    check_ident,
    check_int,
    check_metrics,
    check_names,
    check_plain,
    check_text,
    encode_array,
)

F4: frozenset[str] = frozenset({"<f4"})
F8: frozenset[str] = frozenset({"<f8"})
U1: frozenset[str] = frozenset({"|u1"})
# Updates may travel compressed (half precision or int8 quantised, see ``compression``).
UPDATE_DTYPES: frozenset[str] = frozenset({"<f4", "<f2", "|i1"})
# Construction checks every field the way decoding does, so nothing is built only to be dropped
# on arrival. Sizes are left to each receiver's own ``WireLimits``, hence no bounds here.
_LIMITS: Final = WireLimits(
    max_text_len=sys.maxsize,
    max_name_len=sys.maxsize,
    max_items=sys.maxsize,
    max_plain_depth=sys.maxsize,
)


class _ValueEquality:
    """Field-wise equality that compares numpy arrays by dtype, shape and content."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            _equal(getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)  # type: ignore[arg-type]
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays and maps: not hashable


def _equal(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b))
        )
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


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
class SensorFrame(_ValueEquality):
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
        check_names("channels", self.channels, _LIMITS)
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
class LabelFrame(_ValueEquality):
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
        check_names("names", self.names, _LIMITS)
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


@dataclass(frozen=True, eq=False)
class ModelUpdate(_ValueEquality):
    """A node's training result: the delta from global ``base_version``, keyed by state-dict name.

    ``update_id`` is the idempotency key: the aggregator applies an update id at most once.
    ``round_id`` is set when the update answers a round's train command and ``None`` for
    updates the node produced on its own (drift-triggered fine-tuning).
    """

    KIND: ClassVar[str] = "model_update"

    node: str
    model: str
    base_version: int
    update_id: str
    num_samples: int
    arrays: Mapping[str, NDArray[np.generic]]
    metrics: Mapping[str, float] = field(default_factory=dict)
    round_id: int | None = None
    compression: Mapping[str, Plain] | None = None
    created_at: float = 0.0

    def __post_init__(self) -> None:
        check_ident("node", "node", self.node)
        check_ident("model", "model", self.model)
        check_ident("update_id", "update", self.update_id)
        check_int("base_version", self.base_version, lo=0)
        check_int("num_samples", self.num_samples, lo=1)
        if not self.arrays:
            raise WireError("arrays", "an update carries at least one array")
        _check_named_arrays(self.arrays, UPDATE_DTYPES)
        check_metrics("metrics", self.metrics, _LIMITS)
        if self.round_id is not None:
            check_int("round_id", self.round_id, lo=0)
        if self.compression is not None:
            _check_plain_map("compression", self.compression)
        check_float("created_at", self.created_at)

    def to_fields(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "model": self.model,
            "base_version": self.base_version,
            "update_id": self.update_id,
            "num_samples": self.num_samples,
            "arrays": {k: encode_array(v) for k, v in self.arrays.items()},
            "metrics": dict(self.metrics),
            "round_id": self.round_id,
            "compression": None if self.compression is None else dict(self.compression),
            "created_at": self.created_at,
        }

    @classmethod
    def from_fields(cls, r: FieldReader) -> Self:
        has_compression = r.value("compression", optional=True) is not None
        compression = r.plain_map("compression") if has_compression else None
        return cls(
            node=r.ident("node", "node"),
            model=r.ident("model", "model"),
            base_version=r.integer("base_version", lo=0),
            update_id=r.ident("update_id", "update"),
            num_samples=r.integer("num_samples", lo=1),
            arrays=r.named_arrays("arrays", UPDATE_DTYPES),
            metrics=r.metrics("metrics"),
            round_id=r.opt_integer("round_id", lo=0),
            compression=compression,
            created_at=r.number("created_at"),
        )


@dataclass(frozen=True, eq=False)
class GlobalModel(_ValueEquality):
    """A global model version: float32 weights by state-dict name plus the ONNX graph to run."""

    KIND: ClassVar[str] = "global_model"

    model: str
    version: int
    arrays: Mapping[str, NDArray[np.float32]]
    onnx: bytes
    architecture: Mapping[str, Plain] = field(default_factory=dict)
    parent_version: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    created_at: float = 0.0

    def __post_init__(self) -> None:
        check_ident("model", "model", self.model)
        check_int("version", self.version, lo=0)
        if self.parent_version is not None and not 0 <= self.parent_version < self.version:
            raise WireError(
                "parent_version", f"{self.parent_version} must be in [0, {self.version})"
            )
        _check_named_arrays(self.arrays, F4)
        _check_plain_map("architecture", self.architecture)
        check_metrics("metrics", self.metrics, _LIMITS)
        check_float("created_at", self.created_at)

    def to_fields(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "parent_version": self.parent_version,
            "architecture": dict(self.architecture),
            "arrays": {k: encode_array(v) for k, v in self.arrays.items()},
            "onnx": self.onnx,
            "metrics": dict(self.metrics),
            "created_at": self.created_at,
        }

    @classmethod
    def from_fields(cls, r: FieldReader) -> Self:
        return cls(
            model=r.ident("model", "model"),
            version=r.integer("version", lo=0),
            parent_version=r.opt_integer("parent_version", lo=0),
            architecture=r.plain_map("architecture"),
            arrays=r.named_arrays("arrays", F4),  # type: ignore[arg-type]
            onnx=r.binary("onnx"),
            metrics=r.metrics("metrics"),
            created_at=r.number("created_at"),
        )


@dataclass(frozen=True, eq=False)
class NodeStatus(_ValueEquality):
    """A node's presence: retained birth (``online``), heartbeat, or death (its Last Will)."""

    KIND: ClassVar[str] = "node_status"

    node: str
    online: bool
    time: float
    software_version: str = ""
    model: str | None = None
    model_version: int | None = None
    capabilities: tuple[str, ...] = ()
    info: Mapping[str, Plain] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_ident("node", "node", self.node)
        if not isinstance(self.online, bool):
            raise WireError("online", f"expected a bool, got {type(self.online).__name__}")
        check_float("time", self.time)
        check_text("software_version", self.software_version, _LIMITS.max_name_len)
        if self.model is not None:
            check_ident("model", "model", self.model)
        if self.model_version is not None:
            check_int("model_version", self.model_version, lo=0)
        check_names("capabilities", self.capabilities, _LIMITS)
        _check_plain_map("info", self.info)

    def to_fields(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "online": self.online,
            "time": self.time,
            "software_version": self.software_version,
            "model": self.model,
            "model_version": self.model_version,
            "capabilities": list(self.capabilities),
            "info": dict(self.info),
        }

    @classmethod
    def from_fields(cls, r: FieldReader) -> Self:
        return cls(
            node=r.ident("node", "node"),
            online=r.boolean("online"),
            time=r.number("time"),
            software_version=r.text("software_version", max_len=r.limits.max_name_len),
            model=r.opt_ident("model", "model"),
            model_version=r.opt_integer("model_version", lo=0),
            capabilities=r.names("capabilities"),
            info=r.plain_map("info"),
        )


@dataclass(frozen=True, eq=False)
class Event(_ValueEquality):
    """Something a node reports: an anomaly, a trigger firing, a fine-tune result, an error.

    ``type`` names the event (an id, for example ``anomaly``); ``data`` carries its details.
    """

    KIND: ClassVar[str] = "event"

    node: str
    type: str
    time: float
    event_id: str
    device: str | None = None
    data: Mapping[str, Plain] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_ident("node", "node", self.node)
        check_ident("type", "event type", self.type)
        check_ident("event_id", "event", self.event_id)
        check_float("time", self.time)
        if self.device is not None:
            check_ident("device", "device", self.device)
        _check_plain_map("data", self.data)

    def to_fields(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "type": self.type,
            "time": self.time,
            "event_id": self.event_id,
            "device": self.device,
            "data": dict(self.data),
        }

    @classmethod
    def from_fields(cls, r: FieldReader) -> Self:
        return cls(
            node=r.ident("node", "node"),
            type=r.ident("type", "event type"),
            time=r.number("time"),
            event_id=r.ident("event_id", "event"),
            device=r.opt_ident("device", "device"),
            data=r.plain_map("data"),
        )


@dataclass(frozen=True, eq=False)
class Command(_ValueEquality):
    """An instruction to one node, for example ``train`` with round id, base version, epochs.

    ``deadline`` (seconds since the epoch) lets a node refuse work that can no longer count.
    """

    KIND: ClassVar[str] = "command"

    node: str
    action: str
    command_id: str
    issued_at: float
    params: Mapping[str, Plain] = field(default_factory=dict)
    deadline: float | None = None

    def __post_init__(self) -> None:
        check_ident("node", "node", self.node)
        check_ident("action", "action", self.action)
        check_ident("command_id", "command", self.command_id)
        check_float("issued_at", self.issued_at)
        _check_plain_map("params", self.params)
        if self.deadline is not None:
            check_float("deadline", self.deadline)

    def to_fields(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "action": self.action,
            "command_id": self.command_id,
            "issued_at": self.issued_at,
            "params": dict(self.params),
            "deadline": self.deadline,
        }

    @classmethod
    def from_fields(cls, r: FieldReader) -> Self:
        return cls(
            node=r.ident("node", "node"),
            action=r.ident("action", "action"),
            command_id=r.ident("command_id", "command"),
            issued_at=r.number("issued_at"),
            params=r.plain_map("params"),
            deadline=r.opt_number("deadline"),
        )


def _check_plain_map(name: str, value: Mapping[str, Plain]) -> None:
    check_plain(name, dict(value), _LIMITS, depth=0)


def _check_named_arrays(arrays: Mapping[str, NDArray[np.generic]], dtypes: frozenset[str]) -> None:
    for name, array in arrays.items():
        if not name:
            raise WireError("arrays", "array names must not be empty")
        if array.ndim > MAX_NDIM:
            raise WireError(f"arrays.{name}", f"{array.ndim} dimensions exceed {MAX_NDIM}")
        if array.dtype.newbyteorder("<").str not in dtypes and array.dtype.str not in dtypes:
            raise WireError(
                f"arrays.{name}", f"dtype {array.dtype} not allowed, use {sorted(dtypes)}"
            )
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise WireError(f"arrays.{name}", "contains NaN or infinity")


Message = SensorFrame | LabelFrame | ModelUpdate | GlobalModel | NodeStatus | Event | Command
MESSAGE_TYPES: tuple[type[Message], ...] = (
    SensorFrame,
    LabelFrame,
    ModelUpdate,
    GlobalModel,
    NodeStatus,
    Event,
    Command,
)
