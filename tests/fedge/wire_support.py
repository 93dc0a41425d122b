"""Shared helpers and fixed samples for the wire tests.

Fixed valid messages (one per kind), the wire type of every field with the values each type
must refuse, the places arrays live, and helpers that frame hostile bodies behind a correct
CRC-32 trailer so they reach the msgpack and field validation.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any, Final

import msgpack
import numpy as np
import pytest

from fedge.errors import WireError
from fedge.wire import (
    Command,
    Event,
    GlobalModel,
    LabelFrame,
    Message,
    ModelUpdate,
    NodeStatus,
    SensorFrame,
    decode,
    encode,
)
from tests.fedge.wire_strategies import (
    KINDS,
)

NAN: Final = float("nan")
INF: Final = float("inf")
T0: Final = 1_700_000_000.0


def frame(body: object) -> bytes:
    """Pack ``body`` as msgpack and append the correct CRC-32 trailer, as ``encode`` does."""
    packed = msgpack.packb(body, use_bin_type=True)
    return packed + struct.pack("<I", zlib.crc32(packed))


def fields_of(message: Message) -> dict[str, Any]:
    """The msgpack map inside a message's payload (without the CRC trailer)."""
    fields: dict[str, Any] = msgpack.unpackb(encode(message)[:-4], raw=False)
    return fields


def rejection(payload: object, **kwargs: Any) -> WireError:
    """Decode ``payload``, which must fail with WireError (anything else fails the test)."""
    with pytest.raises(WireError) as info:
        decode(payload, **kwargs)  # type: ignore[call-overload]  # hostile inputs on purpose
    return info.value


def outcome(payload: bytes) -> Message | WireError:
    """Decode ``payload``; a WireError is returned, any other exception propagates."""
    try:
        return decode(payload)
    except WireError as exc:
        return exc


def belongs_to(field: str, key: str) -> bool:
    """Whether an error's ``field`` path names ``key`` or something inside it."""
    return field == key or field.startswith((f"{key}.", f"{key}[", f"{key} "))


def set_path(body: dict[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    """Set a nested key of a decoded body map, in place; return the map."""
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def samples() -> dict[str, Message]:
    """One small valid message of every kind, keyed by kind."""
    weights = {"enc.0.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}
    built: list[Message] = [
        SensorFrame(
            device="dev-1",
            seq=3,
            channels=("temp", "rpm"),
            values=np.array([[20.5, 1400.0], [20.75, 1410.0]], dtype=np.float32),
            t0=T0,
            period=0.5,
        ),
        LabelFrame(
            device="dev-1",
            seq=3,
            names=("anomaly",),
            values=np.array([[0], [1]], dtype=np.uint8),
            t0=T0,
            period=0.5,
        ),
        ModelUpdate(
            node="n1",
            model="lstm-ae",
            base_version=4,
            update_id="n1:4:7",
            num_samples=128,
            arrays=weights,
        ),
        GlobalModel(model="lstm-ae", version=5, arrays=weights, onnx=b"\x08\x07onnx"),
        NodeStatus(node="n1", online=True, time=T0),
        Event(node="n1", type="anomaly", time=T0, event_id="e-1"),
        Command(node="n1", action="train", command_id="c-1", issued_at=T0),
    ]
    return {m.KIND: m for m in built}


SAMPLES: Final = samples()
TIMESTAMPED: Final = SensorFrame(
    device="dev-1",
    seq=0,
    channels=("temp",),
    values=np.array([[1.0], [2.0], [3.0]], dtype=np.float32),
    t0=T0,
    timestamps=np.array([T0, T0 + 0.5, T0 + 0.5], dtype=np.float64),
)

# The wire type of every field of every kind (beyond ``kind`` and ``v``).
FIELD_TYPES: Final[dict[str, dict[str, str]]] = {
    "sensor_frame": {
        "device": "id",
        "seq": "count",
        "channels": "names",
        "values": "array",
        "t0": "number",
        "period": "opt_number",
        "timestamps": "opt_array",
    },
    "label_frame": {
        "device": "id",
        "seq": "count",
        "names": "names",
        "values": "array",
        "t0": "number",
        "period": "opt_number",
        "timestamps": "opt_array",
    },
    "model_update": {
        "node": "id",
        "model": "id",
        "base_version": "count",
        "update_id": "id",
        "num_samples": "count",
        "arrays": "arrays",
        "metrics": "metrics",
        "round_id": "opt_count",
        "compression": "opt_plain",
        "created_at": "number",
    },
    "global_model": {
        "model": "id",
        "version": "count",
        "parent_version": "opt_count",
        "architecture": "plain",
        "arrays": "arrays",
        "onnx": "binary",
        "metrics": "metrics",
        "created_at": "number",
    },
    "node_status": {
        "node": "id",
        "online": "bool",
        "time": "number",
        "software_version": "text",
        "model": "opt_id",
        "model_version": "opt_count",
        "capabilities": "names",
        "info": "plain",
    },
    "event": {
        "node": "id",
        "type": "id",
        "time": "number",
        "event_id": "id",
        "device": "opt_id",
        "data": "plain",
    },
    "command": {
        "node": "id",
        "action": "id",
        "command_id": "id",
        "issued_at": "number",
        "params": "plain",
        "deadline": "opt_number",
    },
}
FIELDS: Final = [(kind, key) for kind in KINDS for key in FIELD_TYPES[kind]]

# Values that no field of the given wire type accepts (``None`` is added for required fields).
DEEP: Final = {"a": {"b": {"c": {"d": 1}}}}  # level 4 inside a plain map: one level too deep
BAD_IDS: Final[list[object]] = [
    True, 7, 2.5, b"n1", ["n1"], {"n": 1}, "", "a/b", "a+b", "#", "a b", "tab\t", "é", "x" * 65
]  # fmt: skip
BAD_COUNTS: Final[list[object]] = [True, 2.5, "7", b"7", [7], {"n": 7}, -1, 2**63, 2**64 - 1]
BAD_NUMBERS: Final[list[object]] = [True, "1.5", b"1", [1.5], {"x": 1.5}, NAN, INF, -INF]
BAD_ARRAYS: Final[list[object]] = [
    True, 7, 1.5, "x", b"\x00\x00\x80\x3f", [1.0], {}, {"dtype": "<f4"}, {"shape": [1]}
]  # fmt: skip
BAD_PLAIN: Final[list[object]] = [
    True, 7, "x", b"x", [1], {"k": b"x"}, {"k": NAN}, {"k": [INF]}, {"k": 2**64 - 1}, {"k": DEEP}
]  # fmt: skip
WRONG: Final[dict[str, list[object]]] = {
    "id": BAD_IDS,
    "count": BAD_COUNTS,
    "number": BAD_NUMBERS,
    "bool": [0, 1, 2.5, "true", b"\x01", [True], {"x": True}],
    "text": [True, 7, 2.5, b"x", ["x"], {"x": "y"}, "x" * 257],
    "names": ["a", b"a", 7, {"a": 1}, [1], [""], ["a", "a"], [None], [b"a"], ["x" * 257]],
    "array": BAD_ARRAYS,
    "arrays": [[], 7, "x", b"x", {"w": 7}, {"w": [1.0]}, {"w": {}}],
    "metrics": [[], 7, "x", {"m": "x"}, {"m": None}, {"m": True}, {"m": [1.0]}, {"m": NAN}],
    "plain": BAD_PLAIN,
    "binary": ["x", 7, [1], {"x": 1}, True],
}


def wrong_values(wire_type: str) -> list[object]:
    """Values a field of ``wire_type`` must reject."""
    optional = wire_type.startswith("opt_")
    base = wire_type.removeprefix("opt_")
    return WRONG[base] + ([] if optional else [None])


# Where arrays live: (message, path to the array map, allowed dtypes).
ARRAY_SITES: Final = [
    (SAMPLES["sensor_frame"], ("values",), ["<f4"]),
    (TIMESTAMPED, ("timestamps",), ["<f8"]),
    (SAMPLES["label_frame"], ("values",), ["|u1"]),
    (SAMPLES["model_update"], ("arrays", "enc.0.weight"), ["<f4", "<f2", "|i1"]),
    (SAMPLES["global_model"], ("arrays", "enc.0.weight"), ["<f4"]),
]
SITE_IDS: Final = ["sensor.values", "sensor.timestamps", "label.values", "update", "global"]


def hostile_array(
    site: tuple[Message, tuple[str, ...], list[str]], change: Callable[[dict[str, Any]], object]
) -> WireError:
    """Apply ``change`` to the array map at ``site``, frame the body, and return the error."""
    message, path, _ = site
    fields = fields_of(message)
    target: Any = fields
    for key in path:
        target = target[key]
    replacement = change(target)
    if replacement is not None:
        set_path(fields, path, replacement)
    return rejection(frame(fields))
