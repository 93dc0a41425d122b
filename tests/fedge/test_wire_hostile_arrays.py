"""Hostile bodies with a valid checksum: malformed array maps are refused, naming the array.

Dtypes outside each field's allow-list, data not matching the shape, bad shapes and
ranks, unknown or missing keys, non-finite floats and bad array collections.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pytest
from numpy.typing import NDArray

from fedge.wire import (
    Message,
)
from tests.fedge.wire_strategies import (
    INT64_MAX,
)
from tests.fedge.wire_support import (
    ARRAY_SITES,
    INF,
    NAN,
    SAMPLES,
    SITE_IDS,
    T0,
    belongs_to,
    fields_of,
    frame,
    hostile_array,
    rejection,
)

# Object, text, big-endian, native-order, unlisted and empty dtype names, plus "<f4" and "|u1",
# which some fields allow and the others must refuse.
REFUSED_DTYPES: Final = [
    "|O",
    "object",
    "<U4",
    ">f4",
    ">f8",
    "=f4",
    "<f8",
    "<i8",
    "<c8",
    "",
    "<f4",
    "|u1",
]
DTYPE_CASES: Final = [
    pytest.param(site, dtype, id=f"{site_id}-{dtype}")
    for site_id, site in zip(SITE_IDS, ARRAY_SITES, strict=True)
    for dtype in REFUSED_DTYPES
    if dtype not in site[2]
]


@pytest.mark.parametrize(("site", "dtype"), DTYPE_CASES)
def test_dtypes_outside_the_allow_list_are_rejected(
    site: tuple[Message, tuple[str, ...], list[str]], dtype: str
) -> None:
    """Only each field's explicit little-endian dtypes are accepted; the rest name .dtype."""

    # Prepare
    def retype(array: dict[str, Any]) -> None:
        array["dtype"] = dtype

    # Execute
    error = hostile_array(site, retype)

    # Assert
    assert error.field == ".".join((*site[1], "dtype"))


@pytest.mark.parametrize("site", ARRAY_SITES, ids=SITE_IDS)
@pytest.mark.parametrize("delta", [-1, 1, -4, 4], ids=["short1", "long1", "short4", "long4"])
def test_data_length_not_matching_the_shape_is_rejected(
    site: tuple[Message, tuple[str, ...], list[str]], delta: int
) -> None:
    """The byte length must equal the shape's element count times the item size."""

    # Prepare
    def resize(a: dict[str, Any]) -> None:
        a["data"] = a["data"][:delta] if delta < 0 else a["data"] + b"\x00" * delta

    # Execute
    error = hostile_array(site, resize)

    # Assert
    assert error.field == ".".join((*site[1], "data"))


@pytest.mark.parametrize("site", ARRAY_SITES, ids=SITE_IDS)
@pytest.mark.parametrize(
    ("shape", "suffix"),
    [
        ([-1, 2], "shape[0]"),
        ([2, -3], "shape[1]"),
        ([2.0, 3], "shape[0]"),
        ([True, 3], "shape[0]"),
        (["2", 3], "shape[0]"),
        ([None], "shape[0]"),
        ([2**64 - 1], "shape[0]"),
        ([1] * 9, "shape"),
        ([0] * 20, "shape"),
        (6, "shape"),
        ("2x3", "shape"),
        ({"0": 2}, "shape"),
        (None, "shape"),
    ],
)
def test_malformed_shapes_are_rejected(
    site: tuple[Message, tuple[str, ...], list[str]], shape: object, suffix: str
) -> None:
    """Negative, non-integer, too many or non-list shapes are refused naming the size."""
    # Prepare / Execute
    error = hostile_array(site, lambda a: a.update(shape=shape))

    # Assert
    assert error.field == ".".join((*site[1], suffix))


@pytest.mark.parametrize("site", ARRAY_SITES, ids=SITE_IDS)
@pytest.mark.parametrize(
    "shape", [[0, 2**62], [2**40, 2**40, 0], [0] + [INT64_MAX] * 7], ids=["2d", "3d", "8d"]
)
def test_empty_arrays_with_absurd_shapes_are_rejected(
    site: tuple[Message, tuple[str, ...], list[str]], shape: list[int]
) -> None:
    """A zero-size shape whose other sizes overflow numpy is a WireError, not a ValueError."""
    # Prepare / Execute
    error = hostile_array(site, lambda a: a.update(shape=shape, data=b""))

    # Assert
    assert belongs_to(error.field, ".".join(site[1]))


@pytest.mark.parametrize(
    ("site", "shape"),
    [
        (ARRAY_SITES[0], [4]),
        (ARRAY_SITES[0], [2, 2, 1]),
        (ARRAY_SITES[0], []),
        (ARRAY_SITES[1], [3, 1]),
        (ARRAY_SITES[1], []),
        (ARRAY_SITES[2], [2]),
        (ARRAY_SITES[2], [1, 2, 1]),
    ],
    ids=["values-1d", "values-3d", "values-0d", "ts-2d", "ts-0d", "labels-1d", "labels-3d"],
)
def test_arrays_of_the_wrong_rank_are_rejected(
    site: tuple[Message, tuple[str, ...], list[str]], shape: list[int]
) -> None:
    """Frame values are 2-D and timestamps 1-D; other ranks are refused on the shape."""
    # Prepare / Execute
    error = hostile_array(site, lambda a: a.update(shape=shape))

    # Assert
    assert error.field == ".".join((*site[1], "shape"))
    assert "dimensions" in error.reason


@pytest.mark.parametrize("site", ARRAY_SITES, ids=SITE_IDS)
@pytest.mark.parametrize("extra", ["strides", "order", "offset"])
def test_unknown_keys_in_an_array_map_are_rejected(
    site: tuple[Message, tuple[str, ...], list[str]], extra: str
) -> None:
    """An array map holds exactly dtype, shape and data."""
    # Prepare / Execute
    error = hostile_array(site, lambda a: a.update({extra: 0}))

    # Assert
    assert error.field == ".".join((*site[1], extra))


@pytest.mark.parametrize("site", ARRAY_SITES, ids=SITE_IDS)
@pytest.mark.parametrize("key", ["dtype", "shape", "data"])
def test_missing_keys_in_an_array_map_are_rejected(
    site: tuple[Message, tuple[str, ...], list[str]], key: str
) -> None:
    """Each of dtype, shape and data is required."""
    # Prepare / Execute
    error = hostile_array(site, lambda a: a.pop(key) and None)

    # Assert
    assert error.field == ".".join((*site[1], key))


@pytest.mark.parametrize(
    ("site", "bad"),
    [
        (ARRAY_SITES[0], np.array([[1.0, NAN], [0.0, 0.0]], "<f4")),
        (ARRAY_SITES[0], np.array([[1.0, INF], [0.0, 0.0]], "<f4")),
        (ARRAY_SITES[1], np.array([T0, T0 + 1, INF], "<f8")),
        (ARRAY_SITES[1], np.array([T0, NAN, T0 + 1], "<f8")),
        (ARRAY_SITES[3], np.array([[1, 2, 3], [4, 5, -INF]], "<f4")),
        (ARRAY_SITES[3], np.array([[1, 2, 3], [4, 5, NAN]], "<f2")),
        (ARRAY_SITES[4], np.array([[1, 2, 3], [4, 5, NAN]], "<f4")),
    ],
    ids=["values-nan", "values-inf", "ts-inf", "ts-nan", "update-f4", "update-f2", "global"],
)
def test_non_finite_float_arrays_are_rejected(
    site: tuple[Message, tuple[str, ...], list[str]], bad: NDArray[Any]
) -> None:
    """NaN or infinity anywhere in a float array is refused, naming the array."""

    # Prepare
    def replace(a: dict[str, Any]) -> None:
        a.update(dtype=bad.dtype.str, data=bad.tobytes())

    # Execute
    error = hostile_array(site, replace)

    # Assert
    assert error.field == ".".join(site[1])


@pytest.mark.parametrize(
    ("kind", "arrays", "field"),
    [
        ("model_update", {}, "arrays"),
        ("model_update", {"": None}, "arrays key"),
        ("global_model", {"": None}, "arrays key"),
        ("model_update", {"x" * 257: None}, "arrays key"),
    ],
    ids=["update-empty", "update-unnamed", "global-unnamed", "update-long-name"],
)
def test_bad_array_collections_are_rejected(kind: str, arrays: dict[str, None], field: str) -> None:
    """An update needs at least one array; array names are non-empty and bounded."""
    # Prepare
    fields = fields_of(SAMPLES[kind])
    valid = fields["arrays"]["enc.0.weight"]
    fields["arrays"] = dict.fromkeys(arrays, valid)

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == field
