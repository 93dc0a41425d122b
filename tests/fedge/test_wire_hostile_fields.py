"""Hostile bodies with a valid checksum: every field refuses wrong, missing or extra values.

The error names the offending field. Array contents are covered in
``test_wire_hostile_arrays``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pytest

from fedge.errors import WireError
from tests.fedge.wire_strategies import (
    KINDS,
)
from tests.fedge.wire_support import (
    FIELD_TYPES,
    FIELDS,
    INF,
    NAN,
    SAMPLES,
    T0,
    TIMESTAMPED,
    belongs_to,
    fields_of,
    frame,
    outcome,
    rejection,
    set_path,
    wrong_values,
)


@pytest.mark.parametrize(("kind", "key"), FIELDS)
def test_wrong_value_types_are_rejected_naming_the_field(kind: str, key: str) -> None:
    """Every field rejects values of the wrong type or out of range, naming itself."""
    # Prepare
    base = fields_of(SAMPLES[kind])
    bad_values = wrong_values(FIELD_TYPES[kind][key])

    # Execute
    results = [(bad, outcome(frame({**base, key: bad}))) for bad in bad_values]

    # Assert
    accepted = [bad for bad, r in results if not isinstance(r, WireError)]
    misnamed = [(bad, r.field) for bad, r in results if isinstance(r, WireError)]
    assert accepted == []
    assert [(bad, f) for bad, f in misnamed if not belongs_to(f, key)] == []


@pytest.mark.parametrize(("kind", "key"), FIELDS)
def test_missing_required_field_is_rejected(kind: str, key: str) -> None:
    """Removing a field is a WireError naming it, unless the field is optional."""
    # Prepare
    fields = fields_of(SAMPLES[kind])
    del fields[key]
    optional = FIELD_TYPES[kind][key].startswith("opt_") and key != "period"

    # Execute
    result = outcome(frame(fields))

    # Assert
    if optional:
        assert result == SAMPLES[kind]
    else:
        assert isinstance(result, WireError)
        assert result.field == key


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("extra", ["extra", "Kind", "pickle", ""])
def test_unknown_field_is_rejected(kind: str, extra: str) -> None:
    """A v1 decoder accepts exactly the v1 schema: unknown keys are an error."""
    # Prepare
    fields = fields_of(SAMPLES[kind])
    fields[extra] = 1

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == extra
    assert error.reason == "unknown field"


@pytest.mark.parametrize(
    ("kind", "key"), [(k, f) for k, f in FIELDS if FIELD_TYPES[k][f] in {"id", "opt_id"}]
)
@pytest.mark.parametrize("bad", ["a/b", "+", "#", "", " ", "n 1", "x" * 65, "\x00", "ñ"])
def test_ids_that_are_not_single_topic_levels_are_rejected(kind: str, key: str, bad: str) -> None:
    """Ids become topic levels: '/', '+', '#', empty, whitespace and long ids are refused."""
    # Prepare
    fields = fields_of(SAMPLES[kind])
    fields[key] = bad

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == key


SCALAR_FLOATS: Final = [
    ("sensor_frame", "t0"),
    ("sensor_frame", "period"),
    ("label_frame", "t0"),
    ("label_frame", "period"),
    ("model_update", "created_at"),
    ("global_model", "created_at"),
    ("node_status", "time"),
    ("event", "time"),
    ("command", "issued_at"),
    ("command", "deadline"),
]


@pytest.mark.parametrize(("kind", "key"), SCALAR_FLOATS)
@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_non_finite_scalar_floats_are_rejected(kind: str, key: str, bad: float) -> None:
    """NaN and infinities are refused in every float field."""
    # Prepare
    fields = fields_of(SAMPLES[kind])
    fields[key] = bad

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == key


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("model_update", ("metrics", "loss")),
        ("global_model", ("metrics", "loss")),
        ("model_update", ("compression", "scale")),
        ("global_model", ("architecture", "dropout")),
        ("node_status", ("info", "load")),
        ("event", ("data", "score")),
        ("command", ("params", "lr")),
    ],
)
@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_non_finite_numbers_in_maps_are_rejected(
    kind: str, path: tuple[str, str], bad: float
) -> None:
    """NaN and infinities are refused inside metrics and plain maps, naming the entry."""
    # Prepare
    fields = fields_of(SAMPLES[kind])
    if fields[path[0]] is None:
        fields[path[0]] = {}
    set_path(fields, path, bad)

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == ".".join(path)


def test_non_finite_value_nested_in_a_plain_list_is_rejected() -> None:
    """Finiteness is checked at any depth of a plain map, lists included."""
    # Prepare
    fields = fields_of(SAMPLES["event"])
    fields["data"] = {"scores": [1.0, {"x": [0.5, NAN]}]}

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == "data.scores[1].x[1]"


@pytest.mark.parametrize(
    ("kind", "updates", "field"),
    [
        ("sensor_frame", {"channels": ["only-one"]}, "values"),
        ("sensor_frame", {"period": 0.0}, "period"),
        ("sensor_frame", {"period": -1.0}, "period"),
        ("label_frame", {"names": []}, "values"),
        ("global_model", {"parent_version": 5}, "parent_version"),
        ("global_model", {"parent_version": 6}, "parent_version"),
        ("model_update", {"num_samples": 0}, "num_samples"),
        ("model_update", {"round_id": -1}, "round_id"),
        ("node_status", {"model_version": -1}, "model_version"),
    ],
)
def test_cross_field_and_range_invariants_hold_on_decode(
    kind: str, updates: dict[str, object], field: str
) -> None:
    """Invariants between fields (columns vs names, parent < version, ranges) are checked."""
    # Prepare
    fields = {**fields_of(SAMPLES[kind]), **updates}

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == field


@pytest.mark.parametrize(
    ("timestamps", "t0"),
    [
        ([T0 + 1.0, T0 + 2.0, T0 + 3.0], T0),  # does not start at t0
        ([T0, T0 + 2.0, T0 + 1.0], T0),  # decreases
        ([T0, T0 + 1.0], T0),  # one per row: there are three rows
    ],
    ids=["start", "decreasing", "length"],
)
def test_inconsistent_timestamps_are_rejected(timestamps: list[float], t0: float) -> None:
    """Explicit timestamps start at t0, never decrease and have one entry per row."""
    # Prepare
    fields = fields_of(TIMESTAMPED)
    array = np.array(timestamps, dtype="<f8")
    fields["timestamps"].update(shape=[len(timestamps)], data=array.tobytes())
    fields["t0"] = t0

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == "timestamps"


def test_both_period_and_timestamps_is_rejected() -> None:
    """A frame gives exactly one of period and timestamps."""
    # Prepare
    fields = fields_of(TIMESTAMPED)
    fields["period"] = 0.5

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == "period"
