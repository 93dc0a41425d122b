"""Hypothesis strategies for the wire tests: valid messages of every kind, any msgpack value."""

from __future__ import annotations

import string
from typing import Any, Final

import msgpack
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from fedge.wire import (
    Command,
    Event,
    GlobalModel,
    LabelFrame,
    Message,
    ModelUpdate,
    NodeStatus,
    Plain,
    SensorFrame,
)

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

ID_ALPHABET: Final = string.ascii_letters + string.digits + "_.:-"
ids = st.text(ID_ALPHABET, min_size=1, max_size=64)
counts = st.integers(0, INT64_MAX)
finite = st.floats(allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0.0, exclude_min=True, allow_infinity=False)
names = st.lists(st.text(min_size=1, max_size=16), unique=True, max_size=5).map(tuple)
keys = st.text(max_size=12)
metrics = st.dictionaries(keys, finite, max_size=4)

plain_leaves: st.SearchStrategy[Plain] = st.one_of(
    st.none(), st.booleans(), st.integers(INT64_MIN, INT64_MAX), finite, st.text(max_size=16)
)


def plain_values(depth: int) -> st.SearchStrategy[Plain]:
    """JSON-like values with at most ``depth`` levels of nested lists and maps."""
    if depth == 0:
        return plain_leaves
    inner = plain_values(depth - 1)
    return st.one_of(
        plain_leaves, st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)
    )


# A plain map is level 0; its values nest three more levels, the deepest the decoder allows.
plain_maps = st.dictionaries(keys, plain_values(3), max_size=4)

# Any rank up to the 8-dimension limit (0-d and empty dimensions included), kept small.
shapes = hnp.array_shapes(min_dims=0, max_dims=8, min_side=0, max_side=2) | hnp.array_shapes(
    min_dims=1, max_dims=3, min_side=0, max_side=5
)
F16_ELEMENTS = st.floats(width=16, allow_nan=False, allow_infinity=False)
F32_ELEMENTS = st.floats(width=32, allow_nan=False, allow_infinity=False)


def wire_arrays(dtype: str) -> st.SearchStrategy[NDArray[Any]]:
    """Arrays of one wire dtype and a random shape; float arrays hold finite values only."""
    elements = {"<f2": F16_ELEMENTS, "<f4": F32_ELEMENTS}.get(dtype)
    return hnp.arrays(np.dtype(dtype), shapes, elements=elements)


array_names = st.text(min_size=1, max_size=24)


@st.composite
def timings(draw: st.DrawFn, rows: int) -> tuple[float, float | None, NDArray[np.float64] | None]:
    """Regular sampling (t0, period) or explicit non-decreasing timestamps starting at t0."""
    if draw(st.booleans()):
        return draw(finite), draw(positive), None
    times = sorted(draw(st.lists(finite, min_size=rows, max_size=rows)))
    return times[0], None, np.array(times, dtype=np.float64)


@st.composite
def sensor_frames(draw: st.DrawFn) -> SensorFrame:
    """Frames of 1-6 rows and 0-5 uniquely named channels, regular or timestamped."""
    channels = draw(names)
    rows = draw(st.integers(1, 6))
    values = draw(hnp.arrays(np.float32, (rows, len(channels)), elements=F32_ELEMENTS))
    t0, period, timestamps = draw(timings(rows))
    return SensorFrame(
        device=draw(ids),
        seq=draw(counts),
        channels=channels,
        values=values,
        t0=t0,
        period=period,
        timestamps=timestamps,
    )


@st.composite
def label_frames(draw: st.DrawFn) -> LabelFrame:
    """Label blocks of 1-6 rows and 0-5 uniquely named uint8 columns."""
    label_names = draw(names)
    rows = draw(st.integers(1, 6))
    values = draw(hnp.arrays(np.uint8, (rows, len(label_names))))
    t0, period, timestamps = draw(timings(rows))
    return LabelFrame(
        device=draw(ids),
        seq=draw(counts),
        names=label_names,
        values=values,
        t0=t0,
        period=period,
        timestamps=timestamps,
    )


@st.composite
def model_updates(draw: st.DrawFn) -> ModelUpdate:
    """Updates of 1-3 arrays in any update dtype and rank, optional fields set or not."""
    update_arrays = st.sampled_from(["<f4", "<f2", "|i1"]).flatmap(wire_arrays)
    return ModelUpdate(
        node=draw(ids),
        model=draw(ids),
        base_version=draw(counts),
        update_id=draw(ids),
        num_samples=draw(st.integers(1, INT64_MAX)),
        arrays=draw(st.dictionaries(array_names, update_arrays, min_size=1, max_size=3)),
        metrics=draw(metrics),
        round_id=draw(st.none() | counts),
        compression=draw(st.none() | plain_maps),
        created_at=draw(finite),
    )


@st.composite
def global_models(draw: st.DrawFn) -> GlobalModel:
    """Global models of 0-3 float32 arrays with a parent version below their own, or none."""
    version = draw(counts)
    parent = draw(st.none() | st.integers(0, version - 1)) if version > 0 else None
    return GlobalModel(
        model=draw(ids),
        version=version,
        arrays=draw(st.dictionaries(array_names, wire_arrays("<f4"), max_size=3)),
        onnx=draw(st.binary(max_size=64)),
        architecture=draw(plain_maps),
        parent_version=parent,
        metrics=draw(metrics),
        created_at=draw(finite),
    )


node_statuses = st.builds(
    NodeStatus,
    node=ids,
    online=st.booleans(),
    time=finite,
    software_version=st.text(max_size=32),
    model=st.none() | ids,
    model_version=st.none() | counts,
    capabilities=names,
    info=plain_maps,
)
events = st.builds(
    Event,
    node=ids,
    type=ids,
    time=finite,
    event_id=ids,
    device=st.none() | ids,
    data=plain_maps,
)
commands = st.builds(
    Command,
    node=ids,
    action=ids,
    command_id=ids,
    issued_at=finite,
    params=plain_maps,
    deadline=st.none() | finite,
)

STRATEGIES: Final[dict[str, st.SearchStrategy[Message]]] = {
    "sensor_frame": sensor_frames(),
    "label_frame": label_frames(),
    "model_update": model_updates(),
    "global_model": global_models(),
    "node_status": node_statuses,
    "event": events,
    "command": commands,
}
KINDS: Final = sorted(STRATEGIES)
messages = st.one_of(*STRATEGIES.values())

# Any value msgpack can pack, of every wire type, including ones no field accepts.
msgpack_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT64_MIN, 2**64 - 1),
    st.floats(),
    st.text(max_size=16),
    st.binary(max_size=16),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
)
msgpack_values = st.recursive(
    msgpack_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
