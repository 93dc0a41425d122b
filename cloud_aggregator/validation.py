"""The checks a model update passes before any strategy sees it.

Decoding (``fedge.wire``) already guarantees a well-formed message; this module checks that the
update fits the model it claims to improve. An update is rejected when:

- its model is unknown (``unknown_model``);
- its base version is newer than the current version (``future_base``) or more than
  ``max_staleness`` versions older (``stale``);
- its sample count is not in ``[1, max_samples]`` (``num_samples``);
- it carries a compression descriptor this aggregator cannot read (``compression``);
- its array names differ from the global model's (``names``), an array's dtype is not allowed
  (``dtype``) or its shape differs from the global array's (``shape``);
- its arrays add up to more than ``max_bytes`` (``size``);
- an array holds NaN or infinity (``non_finite``).

Dtypes: float32 only. An update whose ``compression`` is exactly ``{"scheme": "float16"}`` may
also carry float16 arrays (half the bytes on the wire; strategies widen them to float32). int8
quantisation needs per-array scales that no fedge node sends yet, so any other descriptor is
rejected rather than guessed at.

Each reason is one sentence naming the node and the array ("update from n3 has shape (16, 8)
for enc.0.weight, expected (32, 8)"); its class (``Rejection.code``) is what gets counted.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np

from fedge.wire import GlobalModel, ModelUpdate, Plain

RejectCode = Literal[
    "unknown_model",
    "future_base",
    "stale",
    "num_samples",
    "compression",
    "names",
    "dtype",
    "shape",
    "size",
    "non_finite",
]
FLOAT16_COMPRESSION: Final[Mapping[str, Plain]] = {"scheme": "float16"}
DEFAULT_MAX_SAMPLES: Final = 100_000_000
DEFAULT_MAX_BYTES: Final = 1024 * 2**20
_FLOAT32: Final = frozenset({"<f4"})
_FLOAT16_OR_32: Final = frozenset({"<f4", "<f2"})
_LISTED: Final = 3  # names shown in a reason before "and N more"


@dataclass(frozen=True)
class Rejection:
    """Why an update was refused: a class to count and a sentence to log and record."""

    code: RejectCode
    reason: str

    def __str__(self) -> str:
        return self.reason


def validate_update(
    update: ModelUpdate,
    current: GlobalModel | None,
    max_staleness: int,
    *,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> str | None:
    """The reason ``update`` must be rejected, or None if it may be folded.

    ``current`` is the model's current global version (None if the model is unknown).
    """
    rejection = check_update(
        update, current, max_staleness, max_samples=max_samples, max_bytes=max_bytes
    )
    return None if rejection is None else rejection.reason


def check_update(
    update: ModelUpdate,
    current: GlobalModel | None,
    max_staleness: int,
    *,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Rejection | None:
    """Like ``validate_update``, with the reason's class. Cheap checks run first; only the
    last one reads every value."""
    if max_staleness < 0:
        raise ValueError(f"max_staleness must be >= 0, got {max_staleness}")
    who = f"update from {update.node}"
    if current is None or current.model != update.model:
        return Rejection("unknown_model", f"{who} is for model {update.model!r}, which is unknown")
    return (
        _check_version(who, update, current, max_staleness)
        or _check_samples(who, update, max_samples)
        or _check_compression(who, update)
        or _check_names(who, update, current)
        or _check_arrays(who, update, current)
        or _check_size(who, update, max_bytes)
        or _check_finite(who, update)
    )


def update_norm(update: ModelUpdate) -> float:
    """The L2 norm of the whole update (all arrays as one vector), accumulated in float64."""
    total = sum(float(np.square(a, dtype=np.float64).sum()) for a in update.arrays.values())
    return math.sqrt(total)


def _check_version(
    who: str, update: ModelUpdate, current: GlobalModel, max_staleness: int
) -> Rejection | None:
    base, head = update.base_version, current.version
    if base > head:
        return Rejection(
            "future_base",
            f"{who} is based on version {base} of {update.model}, newer than the current "
            f"version {head}",
        )
    if head - base > max_staleness:
        return Rejection(
            "stale",
            f"{who} is based on version {base} of {update.model}, {head - base} versions behind "
            f"the current {head} (at most {max_staleness} allowed)",
        )
    return None


def _check_samples(who: str, update: ModelUpdate, max_samples: int) -> Rejection | None:
    if not 1 <= update.num_samples <= max_samples:
        return Rejection(
            "num_samples",
            f"{who} claims {update.num_samples} training samples, outside [1, {max_samples}]",
        )
    return None


def _check_compression(who: str, update: ModelUpdate) -> Rejection | None:
    if update.compression is None or dict(update.compression) == dict(FLOAT16_COMPRESSION):
        return None
    return Rejection(
        "compression",
        f"{who} uses compression {dict(update.compression)!r}, which this aggregator cannot "
        f"read (it reads none or {dict(FLOAT16_COMPRESSION)!r})",
    )


def _check_names(who: str, update: ModelUpdate, current: GlobalModel) -> Rejection | None:
    missing = [n for n in current.arrays if n not in update.arrays]
    unknown = [n for n in update.arrays if n not in current.arrays]
    if not missing and not unknown:
        return None
    parts = []
    if missing:
        parts.append(f"lacks {_listing(missing)}")
    if unknown:
        parts.append(f"has unknown {_listing(unknown)}")
    return Rejection(
        "names", f"{who} {' and '.join(parts)} (model {update.model} version {current.version})"
    )


def _check_arrays(who: str, update: ModelUpdate, current: GlobalModel) -> Rejection | None:
    allowed = _FLOAT32 if update.compression is None else _FLOAT16_OR_32
    for name, expected in current.arrays.items():
        array = update.arrays[name]
        if array.dtype.str not in allowed:
            hint = "" if update.compression is None else " under float16 compression"
            return Rejection(
                "dtype",
                f"{who} has dtype {array.dtype} for {name}, expected "
                f"{' or '.join(str(np.dtype(d)) for d in sorted(allowed, reverse=True))}{hint}",
            )
        if array.shape != expected.shape:
            return Rejection(
                "shape", f"{who} has shape {array.shape} for {name}, expected {expected.shape}"
            )
    return None


def _check_size(who: str, update: ModelUpdate, max_bytes: int) -> Rejection | None:
    total = sum(a.nbytes for a in update.arrays.values())
    if total > max_bytes:
        return Rejection("size", f"{who} holds {total} bytes of arrays, more than {max_bytes}")
    return None


def _check_finite(who: str, update: ModelUpdate) -> Rejection | None:
    for name, array in update.arrays.items():
        if array.dtype.kind != "f":
            continue
        finite = np.isfinite(array)
        if not finite.all():
            bad = array.size - int(np.count_nonzero(finite))
            return Rejection(
                "non_finite", f"{who} has {bad} non-finite values (NaN or infinity) in {name}"
            )
    return None


def _listing(names: list[str]) -> str:
    noun = "array" if len(names) == 1 else "arrays"
    shown = ", ".join(names[:_LISTED])
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return f"{noun} {shown}{more}"


@dataclass
class ValidationStats:
    """Updates accepted and rejected, rejections by class: what the metrics endpoint reports."""

    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, rejection: Rejection | None) -> None:
        """Count one validated update: accepted if ``rejection`` is None."""
        with self._lock:
            if rejection is None:
                self.accepted += 1
            else:
                self.rejected[rejection.code] += 1

    @property
    def rejected_total(self) -> int:
        with self._lock:
            return sum(self.rejected.values())

    def snapshot(self) -> dict[str, int]:
        """``{"accepted": n, "rejected.<code>": n, ...}``, a consistent copy."""
        with self._lock:
            out = {"accepted": self.accepted}
            out.update({f"rejected.{code}": n for code, n in sorted(self.rejected.items())})
            return out
