"""Contributions: built from model updates, refused when they cannot be aggregated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from cloud_aggregator.strategies import Contribution, ContributionError
from fedge.wire import ModelUpdate, decode, encode


def _update(arrays: Mapping[str, Any], compression: Mapping[str, Any] | None = None) -> ModelUpdate:
    return ModelUpdate("n7", "pump", 3, "upd-7", 250, arrays, compression=compression)


def test_from_a_decoded_update_without_copying() -> None:
    """A decoded float32 update becomes a contribution weighted by samples, arrays shared."""
    update = decode(encode(_update({"w": np.arange(6, dtype=np.float32)})), ModelUpdate)
    contribution = Contribution.from_update(update)
    assert (contribution.node, contribution.update_id, contribution.weight) == (
        "n7",
        "upd-7",
        250.0,
    )
    assert contribution.arrays["w"] is update.arrays["w"]
    assert Contribution.from_update(update, weight=12.5).weight == 12.5


def test_float16_updates_are_widened() -> None:
    """An update sent with the float16 scheme is widened to float32 on arrival."""
    half = np.array([0.5, -2.0], np.float16)
    contribution = Contribution.from_update(_update({"w": half}, {"scheme": "float16"}))
    assert contribution.arrays["w"].dtype == np.float32
    np.testing.assert_array_equal(contribution.arrays["w"], [0.5, -2.0])


def test_other_compression_is_refused() -> None:
    """A compression scheme strategies cannot read is a ContributionError naming the node."""
    update = _update({"w": np.zeros(2, np.int8)}, {"scheme": "int8"})
    with pytest.raises(ContributionError, match="update from n7 uses compression") as caught:
        Contribution.from_update(update)
    assert caught.value.update_id == "upd-7"


@pytest.mark.parametrize(
    ("arrays", "weight", "message"),
    [
        ({}, 1.0, "carries no arrays"),
        ({"w": np.zeros(2, np.float64)}, 1.0, "has dtype float64 for w, expected float32"),
        ({"w": [1.0, 2.0]}, 1.0, "has a list for w"),
        ({"w": np.zeros(2, np.float32)}, 0.0, "has weight 0.0"),
        ({"w": np.zeros(2, np.float32)}, float("inf"), "has weight inf"),
        ({"w": np.zeros(2, np.float32)}, True, "has weight True"),
    ],
)
def test_unusable_contributions_are_refused(
    arrays: Mapping[str, Any], weight: float, message: str
) -> None:
    """Wrong dtypes, no arrays or a non-positive weight raise ContributionError."""
    with pytest.raises(ContributionError, match=message):
        Contribution("n1", arrays, weight)
