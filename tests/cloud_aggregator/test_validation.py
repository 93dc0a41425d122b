"""Update validation: every hostile update is rejected with its reason; a valid one passes."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from cloud_aggregator.validation import (
    FLOAT16_COMPRESSION,
    Rejection,
    ValidationStats,
    check_update,
    update_norm,
    validate_update,
)
from fedge.wire import GlobalModel, ModelUpdate

SHAPES = {"enc.0.weight": (32, 8), "enc.0.bias": (32,), "dec.weight": (8, 32)}
CURRENT = GlobalModel(
    model="pump",
    version=5,
    arrays={name: np.zeros(shape, np.float32) for name, shape in SHAPES.items()},
    onnx=b"onnx",
)
MAX_STALENESS = 2


def _update(**changes: object) -> ModelUpdate:
    fields: dict[str, object] = {
        "node": "n3",
        "model": "pump",
        "base_version": 5,
        "update_id": "u1",
        "num_samples": 100,
        "arrays": {name: np.full(shape, 0.01, np.float32) for name, shape in SHAPES.items()},
    }
    fields.update(changes)
    return ModelUpdate(**fields)  # type: ignore[arg-type]


def _with_array(name: str, array: np.ndarray, **changes: object) -> ModelUpdate:
    arrays = dict(_update().arrays)
    arrays[name] = array
    return _update(arrays=arrays, **changes)


def _without(name: str) -> ModelUpdate:
    return _update(arrays={k: v for k, v in _update().arrays.items() if k != name})


def _poisoned(value: float) -> ModelUpdate:
    """A valid update whose array is changed after construction (a bug elsewhere, say)."""
    update = _update()
    array = update.arrays["enc.0.bias"]
    array[[3, 7]] = value
    return update


def _forged(**fields: object) -> ModelUpdate:
    """A valid update with fields set past the constructor's own checks."""
    update = _update()
    for name, value in fields.items():
        object.__setattr__(update, name, value)
    return update


HOSTILE: list[tuple[str, Callable[[], ModelUpdate], str, str]] = [
    (
        "unknown model",
        lambda: _update(model="boiler"),
        "unknown_model",
        "update from n3 is for model 'boiler', which is unknown",
    ),
    (
        "base newer than current",
        lambda: _update(base_version=6),
        "future_base",
        "update from n3 is based on version 6 of pump, newer than the current version 5",
    ),
    (
        "too stale",
        lambda: _update(base_version=2),
        "stale",
        "update from n3 is based on version 2 of pump, 3 versions behind the current 5 "
        "(at most 2 allowed)",
    ),
    (
        "too many samples",
        lambda: _update(num_samples=10_001),
        "num_samples",
        "update from n3 claims 10001 training samples, outside [1, 10000]",
    ),
    (
        "no samples",
        lambda: _forged(num_samples=0),
        "num_samples",
        "update from n3 claims 0 training samples, outside [1, 10000]",
    ),
    (
        "unknown compression",
        lambda: _update(compression={"scheme": "int8", "scale": 0.1}),
        "compression",
        "update from n3 uses compression {'scheme': 'int8', 'scale': 0.1}, which this "
        "aggregator cannot read (it reads none or {'scheme': 'float16'})",
    ),
    (
        "missing array",
        lambda: _without("enc.0.bias"),
        "names",
        "update from n3 lacks array enc.0.bias (model pump version 5)",
    ),
    (
        "renamed array",
        lambda: _update(
            arrays={
                ("encoder.bias" if k == "enc.0.bias" else k): v for k, v in _update().arrays.items()
            }
        ),
        "names",
        "update from n3 lacks array enc.0.bias and has unknown array encoder.bias "
        "(model pump version 5)",
    ),
    (
        "wrong shape",
        lambda: _with_array("enc.0.weight", np.zeros((16, 8), np.float32)),
        "shape",
        "update from n3 has shape (16, 8) for enc.0.weight, expected (32, 8)",
    ),
    (
        "wrong size, flattened",
        lambda: _with_array("dec.weight", np.zeros(256, np.float32)),
        "shape",
        "update from n3 has shape (256,) for dec.weight, expected (8, 32)",
    ),
    (
        "float16 without compression",
        lambda: _with_array("enc.0.bias", np.zeros(32, np.float16)),
        "dtype",
        "update from n3 has dtype float16 for enc.0.bias, expected float32",
    ),
    (
        "int8 under float16 compression",
        lambda: _with_array("enc.0.bias", np.zeros(32, np.int8), compression=FLOAT16_COMPRESSION),
        "dtype",
        "update from n3 has dtype int8 for enc.0.bias, expected float32 or float16 under "
        "float16 compression",
    ),
    (
        "NaN",
        lambda: _poisoned(math.nan),
        "non_finite",
        "update from n3 has 2 non-finite values (NaN or infinity) in enc.0.bias",
    ),
    (
        "infinity",
        lambda: _poisoned(math.inf),
        "non_finite",
        "update from n3 has 2 non-finite values (NaN or infinity) in enc.0.bias",
    ),
]


@pytest.mark.parametrize(
    ("build", "code", "reason"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_a_hostile_update_is_rejected_with_its_reason(
    build: Callable[[], ModelUpdate], code: str, reason: str
) -> None:
    """Each hostile update is refused with a sentence naming the node and the array."""
    update = build()

    rejection = check_update(update, CURRENT, MAX_STALENESS, max_samples=10_000)
    message = validate_update(update, CURRENT, MAX_STALENESS, max_samples=10_000)

    assert rejection == Rejection(code, reason)  # type: ignore[arg-type]
    assert message == reason


@pytest.mark.parametrize(
    "update",
    [
        _update(),
        _update(base_version=3),  # exactly max_staleness behind
        _with_array("enc.0.bias", np.zeros(32, np.float16), compression=FLOAT16_COMPRESSION),
    ],
    ids=["current base", "oldest allowed base", "float16 compressed"],
)
def test_a_valid_update_passes(update: ModelUpdate) -> None:
    """A well-formed update on an allowed base version, float32 or declared float16, passes."""
    reason = validate_update(update, CURRENT, MAX_STALENESS)

    assert reason is None


def test_an_unknown_model_has_no_current_version() -> None:
    """Without a current global model every update is for an unknown model."""
    rejection = check_update(_update(), None, MAX_STALENESS)

    assert rejection is not None
    assert rejection.code == "unknown_model"


def test_an_oversized_update_is_rejected_before_its_values_are_read() -> None:
    """The byte cap applies to the sum of all arrays, ahead of the finiteness scan."""
    update = _poisoned(math.nan)
    total = sum(a.nbytes for a in update.arrays.values())

    rejection = check_update(update, CURRENT, MAX_STALENESS, max_bytes=total - 1)

    assert rejection == Rejection(
        "size", f"update from n3 holds {total} bytes of arrays, more than {total - 1}"
    )


def test_a_negative_staleness_limit_is_a_programming_error() -> None:
    """max_staleness below zero raises rather than rejecting every update."""
    with pytest.raises(ValueError, match="max_staleness"):
        check_update(_update(), CURRENT, -1)


def test_the_update_norm_covers_every_array() -> None:
    """The norm is the L2 norm of all arrays taken as one vector."""
    update = _update()

    norm = update_norm(update)

    assert norm == pytest.approx(0.01 * math.sqrt(sum(math.prod(s) for s in SHAPES.values())))


def test_validation_stats_count_accepted_and_rejected_by_class() -> None:
    """Stats count accepted updates and rejections by reason class."""
    stats = ValidationStats()
    updates = [_update(), _update(base_version=0), _update(model="x"), _update(base_version=1)]

    for update in updates:
        stats.count(check_update(update, CURRENT, MAX_STALENESS))

    assert stats.snapshot() == {"accepted": 1, "rejected.stale": 2, "rejected.unknown_model": 1}
    assert stats.rejected_total == 3
