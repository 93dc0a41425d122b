"""Model messages: a node's update and a global model version, both maps of named arrays."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from fedge.errors import WireError
from fedge.wire._base import F4, LIMITS, UPDATE_DTYPES, ValueEquality, check_plain_map
from fedge.wire._fields import (
    MAX_NDIM,
    FieldReader,
    Plain,
    check_float,
    check_ident,
    check_int,
    check_metrics,
    encode_array,
)


@dataclass(frozen=True, eq=False)
class ModelUpdate(ValueEquality):
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
        check_metrics("metrics", self.metrics, LIMITS)
        if self.round_id is not None:
            check_int("round_id", self.round_id, lo=0)
        if self.compression is not None:
            check_plain_map("compression", self.compression)
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
class GlobalModel(ValueEquality):
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
        check_plain_map("architecture", self.architecture)
        check_metrics("metrics", self.metrics, LIMITS)
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
