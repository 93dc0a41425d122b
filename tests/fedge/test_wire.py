"""The wire codec: every valid message round-trips, every malformed payload is a WireError.

``decode`` turns untrusted bytes into messages, so most of these tests feed it corrupted,
truncated or hostile payloads and assert that the only exception ever raised is ``WireError``
(any other exception fails the test), naming the offending field where that makes sense.
Hostile bodies carry a correct CRC-32 trailer so they reach the msgpack and field validation.
"""

from __future__ import annotations

import dataclasses
import pickle
import string
import struct
import zlib
from collections.abc import Callable
from typing import Any, Final

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from fedge.errors import WireError
from fedge.wire import (
    MESSAGE_TYPES,
    SCHEMA_VERSION,
    Command,
    Event,
    GlobalModel,
    LabelFrame,
    Message,
    ModelUpdate,
    NodeStatus,
    Plain,
    SensorFrame,
    WireLimits,
    decode,
    encode,
)

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
NAN: Final = float("nan")
INF: Final = float("inf")
T0: Final = 1_700_000_000.0

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Strategies for valid messages
# --------------------------------------------------------------------------------------------

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

# --------------------------------------------------------------------------------------------
# Fixed valid samples, one per kind, with optional fields left out (None)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@settings(deadline=None, max_examples=40)
@given(data=st.data())
def test_every_valid_message_round_trips(kind: str, data: st.DataObject) -> None:
    """decode(encode(m)) == m for random valid messages of every kind."""
    # Prepare
    message = data.draw(STRATEGIES[kind])

    # Execute
    decoded = decode(encode(message))

    # Assert
    assert type(decoded) is type(message)
    assert decoded == message


@settings(deadline=None, max_examples=60)
@given(message=messages)
def test_decode_accepts_the_expected_kind_and_rejects_every_other(message: Message) -> None:
    """With expect=<its kind> a payload decodes; with any other kind it fails on "kind"."""
    # Prepare
    payload = encode(message)
    others = [cls for cls in MESSAGE_TYPES if cls is not type(message)]

    # Execute
    decoded = decode(payload, expect=type(message))
    errors = [rejection(payload, expect=cls) for cls in others]

    # Assert
    assert decoded == message
    assert [e.field for e in errors] == ["kind"] * len(others)


@pytest.mark.parametrize("kind", KINDS)
def test_payload_is_a_msgpack_map_with_kind_and_version_then_a_crc32(kind: str) -> None:
    """The frame is ``msgpack({"kind", "v", ...}) || crc32_le``, as documented in the codec."""
    # Prepare
    message = SAMPLES[kind]

    # Execute
    payload = encode(message)

    # Assert
    body, trailer = payload[:-4], payload[-4:]
    assert struct.unpack("<I", trailer)[0] == zlib.crc32(body)
    fields = msgpack.unpackb(body, raw=False)
    assert fields["kind"] == kind == type(message).KIND
    assert fields["v"] == SCHEMA_VERSION
    assert set(fields) == {"kind", "v", *FIELD_TYPES[kind]}


def test_message_kinds_are_unique_and_all_covered() -> None:
    """Every message class has its own KIND, and this file has a strategy for each."""
    # Prepare / Execute
    kinds = [cls.KIND for cls in MESSAGE_TYPES]

    # Assert
    assert len(set(kinds)) == len(kinds) == 7
    assert sorted(kinds) == KINDS == sorted(FIELD_TYPES)


def test_decoded_arrays_are_read_only() -> None:
    """Arrays of a decoded message are read-only, so a handler cannot alter shared bytes."""
    # Prepare
    payload = encode(SAMPLES["model_update"])

    # Execute
    update = decode(payload, expect=ModelUpdate)

    # Assert
    assert all(not array.flags.writeable for array in update.arrays.values())


def test_zero_dimensional_arrays_keep_their_shape() -> None:
    """A 0-d array (a scalar in a state dict) decodes as 0-d, not as shape (1,)."""
    # Prepare
    update = ModelUpdate(
        node="n1",
        model="m",
        base_version=0,
        update_id="u",
        num_samples=1,
        arrays={"bn.momentum": np.array(0.5, dtype=np.float32), "q": np.array(-3, np.int8)},
    )

    # Execute
    decoded = decode(encode(update), expect=ModelUpdate)

    # Assert
    assert decoded.arrays["bn.momentum"].shape == ()
    assert decoded == update


def test_big_endian_and_non_contiguous_arrays_travel_as_little_endian_copies() -> None:
    """Byte order and memory layout are normalised on encode; values are kept exactly."""
    # Prepare
    values = np.arange(24, dtype=np.float32).reshape(4, 6)
    big_endian = values.astype(">f4")
    strided = np.arange(48, dtype=np.float32).reshape(4, 12)[:, ::2]
    fortran = np.asfortranarray(values)
    update = ModelUpdate(
        node="n1",
        model="m",
        base_version=0,
        update_id="u",
        num_samples=1,
        arrays={"be": big_endian, "strided": strided, "fortran": fortran},
    )

    # Execute
    decoded = decode(encode(update), expect=ModelUpdate)

    # Assert
    assert {a.dtype.str for a in decoded.arrays.values()} == {"<f4"}
    np.testing.assert_array_equal(decoded.arrays["be"], values)
    np.testing.assert_array_equal(decoded.arrays["strided"], strided)
    np.testing.assert_array_equal(decoded.arrays["fortran"], values)


@pytest.mark.parametrize("kind", KINDS)
def test_absent_optional_fields_read_as_none(kind: str) -> None:
    """An optional field that is missing from the map decodes like an explicit None."""
    # Prepare
    message = SAMPLES[kind]
    fields = fields_of(message)
    types = FIELD_TYPES[kind]
    optional = [k for k, t in types.items() if t.startswith("opt_") and fields[k] is None]
    for key in optional:
        del fields[key]

    # Execute
    decoded = decode(frame(fields))

    # Assert
    assert optional  # every kind has an optional field
    assert decoded == message


def test_bytes_like_payloads_decode_like_bytes() -> None:
    """A bytearray or a memoryview decodes like the bytes it holds."""
    # Prepare
    message = SAMPLES["node_status"]
    payload = encode(message)

    # Execute
    from_bytearray = decode(bytearray(payload))
    from_view = decode(memoryview(payload))
    from_slice = decode(memoryview(b"junk" + payload)[4:])

    # Assert
    assert from_bytearray == message
    assert from_view == message
    assert from_slice == message


def test_typed_memoryview_is_measured_in_bytes() -> None:
    """A memoryview of 4-byte items is decoded by its bytes, not by its item count."""
    # Prepare
    message = Command(node="n1", action="train", command_id="c-1", issued_at=T0)
    fields = fields_of(message)
    payload = frame(fields)
    while len(payload) % 4:  # grow a text field until the frame is a whole number of words
        fields["command_id"] += "x"
        payload = frame(fields)
    view = memoryview(payload).cast("I")

    # Execute
    decoded = decode(view, expect=Command)

    # Assert
    assert len(view) * 4 == len(payload)
    assert decoded.command_id == fields["command_id"]


def test_non_contiguous_memoryview_is_rejected() -> None:
    """A strided buffer is a WireError, not a BufferError from the checksum."""
    # Prepare
    payload = encode(SAMPLES["event"])
    strided = np.frombuffer(payload * 2, np.uint8)[::2].data

    # Execute
    error = rejection(strided)

    # Assert
    assert error.field == "payload"


# --------------------------------------------------------------------------------------------
# Corrupted frames
# --------------------------------------------------------------------------------------------


@settings(deadline=None, max_examples=30)
@given(message=messages)
def test_every_truncation_is_rejected(message: Message) -> None:
    """Every proper prefix of a payload, including the empty one, raises WireError."""
    # Prepare
    payload = encode(message)

    # Execute
    errors = [rejection(payload[:cut]) for cut in range(len(payload))]

    # Assert
    assert {e.field for e in errors} == {"payload"}


@settings(deadline=None, max_examples=200)
@given(message=messages, data=st.data())
def test_a_flipped_bit_is_rejected(message: Message, data: st.DataObject) -> None:
    """Flipping any one bit of a payload, body or trailer, raises WireError."""
    # Prepare
    payload = bytearray(encode(message))
    bit = data.draw(st.integers(0, 8 * len(payload) - 1))
    payload[bit // 8] ^= 1 << (bit % 8)

    # Execute
    error = rejection(bytes(payload))

    # Assert
    assert error.field == "payload"


@pytest.mark.parametrize("kind", KINDS)
def test_every_single_bit_flip_of_a_sample_is_rejected(kind: str) -> None:
    """Exhaustively: each of the 8 * len single-bit corruptions of a sample is a WireError."""
    # Prepare
    payload = encode(SAMPLES[kind])
    corrupted = []
    for bit in range(8 * len(payload)):
        flipped = bytearray(payload)
        flipped[bit // 8] ^= 1 << (bit % 8)
        corrupted.append(bytes(flipped))

    # Execute
    errors = [rejection(p) for p in corrupted]

    # Assert
    assert len(errors) == 8 * len(payload)


@settings(deadline=None, max_examples=300)
@given(payload=st.binary(max_size=512))
def test_random_bytes_are_rejected(payload: bytes) -> None:
    """Arbitrary bytes raise WireError."""
    # Prepare / Execute
    error = rejection(payload)

    # Assert
    assert error.field == "payload"


@settings(deadline=None, max_examples=300)
@given(body=st.binary(max_size=256))
def test_random_bodies_with_a_valid_checksum_never_raise_anything_else(body: bytes) -> None:
    """Random bytes behind a correct CRC reach msgpack and still yield only WireError."""
    # Prepare
    payload = body + struct.pack("<I", zlib.crc32(body))

    # Execute
    result = outcome(payload)

    # Assert
    assert isinstance(result, WireError)


@settings(deadline=None, max_examples=200)
@given(value=msgpack_values)
def test_random_msgpack_values_with_a_valid_checksum_are_rejected(value: object) -> None:
    """Any well-formed msgpack value that is not a message decodes to WireError."""
    # Prepare
    payload = frame(value)

    # Execute
    result = outcome(payload)

    # Assert
    assert isinstance(result, WireError)


@pytest.mark.parametrize("payload", ["text", None, 7, [1, 2], {"kind": "event"}])
def test_non_bytes_payload_is_rejected(payload: object) -> None:
    """Only bytes-like payloads are accepted."""
    # Prepare / Execute
    error = rejection(payload)

    # Assert
    assert error.field == "payload"


@settings(deadline=None, max_examples=40)
@given(message=messages)
def test_oversized_payload_is_rejected_before_decoding(message: Message) -> None:
    """A payload above max_payload_bytes is refused; one exactly at the limit decodes."""
    # Prepare
    payload = encode(message)
    tight = WireLimits(max_payload_bytes=len(payload) - 1)
    exact = WireLimits(max_payload_bytes=len(payload))

    # Execute
    error = rejection(payload, limits=tight)
    decoded = decode(payload, limits=exact)

    # Assert
    assert error.field == "payload"
    assert "exceed" in error.reason
    assert decoded == message


# --------------------------------------------------------------------------------------------
# Hostile bodies with a valid checksum: envelope
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sensor-frame", "SensorFrame", "", "pickle", "x" * 65, 7, None])
def test_unknown_or_malformed_kind_is_rejected(kind: object) -> None:
    """A kind that names no message type is a WireError on "kind"."""
    # Prepare
    fields = fields_of(SAMPLES["event"])
    fields["kind"] = kind

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == "kind"


@pytest.mark.parametrize("version", [0, 2, -1, 2**64 - 1, "1", 1.0, True, None, [1]])
def test_unsupported_schema_version_is_rejected(version: object) -> None:
    """Only the integer 1 is schema version 1: not 2, not "1", not 1.0 and not True."""
    # Prepare
    fields = fields_of(SAMPLES["command"])
    fields["v"] = version

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == "v"


@pytest.mark.parametrize("key", ["kind", "v"])
def test_missing_envelope_field_is_rejected(key: str) -> None:
    """A body without kind or schema version is refused."""
    # Prepare
    fields = fields_of(SAMPLES["node_status"])
    del fields[key]

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == key
    assert error.reason == "missing"


@pytest.mark.parametrize("body", [[], 7, "event", b"event", None, True, 1.5])
def test_body_that_is_not_a_map_is_rejected(body: object) -> None:
    """The body must be a msgpack map."""
    # Prepare / Execute
    error = rejection(frame(body))

    # Assert
    assert error.field == "message"


def test_trailing_bytes_after_the_map_are_rejected() -> None:
    """Extra msgpack data after the body map is a WireError."""
    # Prepare
    packed = msgpack.packb(fields_of(SAMPLES["event"]), use_bin_type=True) + b"\xc0"
    payload = packed + struct.pack("<I", zlib.crc32(packed))

    # Execute
    error = rejection(payload)

    # Assert
    assert error.field == "payload"


@pytest.mark.parametrize(
    "key", [b"kind", 1, 1.5, None, (1, 2)], ids=["bytes", "int", "float", "nil", "array"]
)
def test_map_keys_that_are_not_strings_are_rejected(key: object) -> None:
    """Map keys must be strings; bytes, numbers, nil and arrays as keys are refused."""
    # Prepare
    fields: dict[Any, object] = {**fields_of(SAMPLES["event"]), key: 1}

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field in {"payload", str(key)}


def test_invalid_utf8_string_is_rejected() -> None:
    """A msgpack str with invalid UTF-8 (here a lone surrogate) is a WireError."""
    # Prepare
    fields = fields_of(SAMPLES["event"])
    fields["node"] = "PLACEHOLDER"
    packed = msgpack.packb(fields, use_bin_type=True).replace(
        b"\xabPLACEHOLDER", b"\xab" + b"\xed\xa0\x80" + b"A" * 8
    )
    payload = packed + struct.pack("<I", zlib.crc32(packed))

    # Execute
    error = rejection(payload)

    # Assert
    assert error.field == "payload"


# --------------------------------------------------------------------------------------------
# Hostile bodies: fields
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Hostile bodies: pickles, extension types, nesting and size limits
# --------------------------------------------------------------------------------------------

UNPICKLED: list[str] = []


def record_unpickling() -> None:
    """What a malicious pickle below would run if anything ever unpickled it."""
    UNPICKLED.append("unpickled")


class Exploit:
    """An object whose pickle calls ``record_unpickling`` when loaded."""

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        return record_unpickling, ()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_payloads_are_rejected_and_never_loaded(protocol: int) -> None:
    """A pickle, bare or behind a valid checksum, is a WireError and is never unpickled."""
    # Prepare
    pickled = pickle.dumps(Exploit(), protocol=protocol)
    framed = pickled + struct.pack("<I", zlib.crc32(pickled))

    # Execute
    errors = [rejection(pickled), rejection(framed)]

    # Assert
    assert [e.field for e in errors] == ["payload", "payload"]
    assert UNPICKLED == []


@pytest.mark.parametrize("site", ARRAY_SITES, ids=SITE_IDS)
def test_pickle_as_object_array_data_is_rejected_and_never_loaded(
    site: tuple[Message, tuple[str, ...], list[str]],
) -> None:
    """An object array whose data is a pickle is refused on its dtype and never unpickled."""
    # Prepare
    pickled = pickle.dumps(np.array([Exploit()], dtype=object))

    # Execute
    error = hostile_array(site, lambda a: a.update(dtype="|O", shape=[1], data=pickled))

    # Assert
    assert error.field == ".".join((*site[1], "dtype"))
    assert UNPICKLED == []


@pytest.mark.parametrize(
    "ext",
    [
        msgpack.ExtType(1, b"x"),
        msgpack.ExtType(5, b"abcd"),
        msgpack.ExtType(127, b""),
        msgpack.Timestamp(1, 0),  # packs as the standard extension type -1
        msgpack.Timestamp(2**40, 5),
    ],
    ids=["fixext1", "fixext4", "empty", "timestamp32", "timestamp96"],
)
@pytest.mark.parametrize(
    "path", [("created_at",), ("onnx",), ("architecture", "x"), ("metrics", "loss"), ("ext",)]
)
def test_msgpack_extension_types_are_rejected(ext: object, path: tuple[str, ...]) -> None:
    """No extension type (timestamps included) is accepted anywhere in a body."""
    # Prepare
    fields = set_path(fields_of(SAMPLES["global_model"]), path, ext)

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == "payload"


@pytest.mark.parametrize(
    ("kind", "key"),
    [("model_update", "compression"), ("global_model", "architecture"), ("node_status", "info"),
     ("event", "data"), ("command", "params")],
)  # fmt: skip
def test_plain_maps_nested_beyond_the_limit_are_rejected(kind: str, key: str) -> None:
    """Plain maps nest at most four levels; a list or map at level four is refused."""
    # Prepare
    fields = fields_of(SAMPLES[kind])
    deepest_allowed = {"a": [{"c": 1}]}  # levels 1, 2 and 3 below the field itself
    too_deep = {"a": [{"c": [1]}]}

    # Execute
    accepted = decode(frame({**fields, key: {"k": deepest_allowed}}))
    error = rejection(frame({**fields, key: {"k": too_deep}}))

    # Assert
    assert getattr(accepted, key) == {"k": deepest_allowed}
    assert error.field == f"{key}.k.a[0].c"
    assert "deeper" in error.reason


def test_plain_depth_limit_is_configurable() -> None:
    """WireLimits.max_plain_depth bounds nesting; the default allows what this one refuses."""
    # Prepare
    message = Event(node="n1", type="t", time=T0, event_id="e", data={"a": {"b": 1}})
    payload = encode(message)

    # Execute
    error = rejection(payload, limits=WireLimits(max_plain_depth=1))

    # Assert
    assert decode(payload) == message
    assert error.field == "data.a"


def frame_raw(body: bytes) -> bytes:
    """Append the CRC trailer to an already packed body."""
    return body + struct.pack("<I", zlib.crc32(body))


def nested_in_event_data(depth: int) -> bytes:
    """A valid event body whose ``data`` holds ``depth`` nested one-element lists."""
    packed = msgpack.packb(fields_of(SAMPLES["event"]), use_bin_type=True)
    nested = b"\xa4data\x81\xa1k" + b"\x91" * depth + b"\xc0"
    return frame_raw(packed.replace(b"\xa4data\x80", nested))


@pytest.mark.parametrize("depth", [1_000, 1_100, 100_000])
def test_pathologically_deep_msgpack_is_rejected(depth: int) -> None:
    """Thousands of nested arrays or maps fail cleanly, without a recursion error."""
    # Prepare
    arrays = frame_raw(b"\x91" * depth + b"\xc0")
    maps = frame_raw(b"\x81\xa1k" * depth + b"\xc0")

    # Execute
    errors = [rejection(arrays), rejection(maps), rejection(nested_in_event_data(depth))]

    # Assert
    assert errors[0].field in {"message", "payload"}  # msgpack itself stops at 1024 levels
    assert errors[1].field in {"kind", "payload"}
    assert errors[2].field in {"data.k[0][0][0]", "payload"}  # the fourth level is refused


def test_deep_nesting_with_a_huge_depth_limit_is_still_a_wire_error() -> None:
    """Even when max_plain_depth allows it, nesting too deep for validation is a WireError."""
    # Prepare
    payload = nested_in_event_data(1_000)

    # Execute
    error = rejection(payload, limits=WireLimits(max_plain_depth=100_000))

    # Assert
    assert error.field == "message"


@pytest.mark.parametrize(
    ("kind", "path", "value", "field"),
    [
        ("node_status", ("software_version",), "v" * 257, "software_version"),
        ("node_status", ("info", "k"), "x" * 4097, "info.k"),
        ("node_status", ("info", "k" * 257), 1, "info key"),
        ("event", ("data", "k"), ["x" * 4097], "data.k[0]"),
        ("global_model", ("metrics", "m" * 257), 1.0, "metrics key"),
        ("sensor_frame", ("channels",), ["c" * 257, "d"], "channels[0]"),
        ("label_frame", ("names",), ["n" * 257], "names[0]"),
        ("node_status", ("capabilities",), ["c" * 257], "capabilities[0]"),
        ("sensor_frame", ("values", "dtype"), "<f4" + " " * 6, "values.dtype"),
        ("event", ("kind",), "event" + "x" * 60, "kind"),
    ],
)
def test_strings_beyond_the_default_limits_are_rejected(
    kind: str, path: tuple[str, ...], value: object, field: str
) -> None:
    """Text, names, keys, dtype and kind strings are bounded by the default WireLimits."""
    # Prepare
    fields = set_path(fields_of(SAMPLES[kind]), path, value)

    # Execute
    error = rejection(frame(fields))

    # Assert
    assert error.field == field
    assert "limit" in error.reason


@pytest.mark.parametrize(
    ("message", "limits", "field"),
    [
        (
            NodeStatus(node="n", online=True, time=0.0, capabilities=("a", "b", "c")),
            WireLimits(max_items=2),
            "capabilities",
        ),
        (
            Event(node="n", type="t", time=0.0, event_id="e", data={"k": [1, 2, 3]}),
            WireLimits(max_items=2),
            "data.k",
        ),
        (
            Command(node="n", action="a", command_id="c", issued_at=0.0, params={"a": 1, "b": 2}),
            WireLimits(max_items=1),
            "params",
        ),
        (
            GlobalModel(model="m", version=0, arrays={}, onnx=b"", metrics={"a": 1.0, "b": 2.0}),
            WireLimits(max_items=1),
            "metrics",
        ),
        (
            ModelUpdate(
                node="n",
                model="m",
                base_version=0,
                update_id="u",
                num_samples=1,
                arrays={k: np.zeros(1, np.float32) for k in "abc"},
            ),
            WireLimits(max_items=2),
            "arrays",
        ),
        (
            Event(node="n", type="t", time=0.0, event_id="e", data={"k": "x" * 11}),
            WireLimits(max_text_len=10),
            "data.k",
        ),
        (
            NodeStatus(node="n", online=True, time=0.0, software_version="x" * 11),
            WireLimits(max_name_len=10),
            "software_version",
        ),
    ],
    ids=["names", "list", "map", "metrics", "arrays", "text", "name"],
)
def test_collection_and_text_limits_are_configurable(
    message: Message, limits: WireLimits, field: str
) -> None:
    """Counts and lengths are bounded by the decoder's WireLimits, naming the field."""
    # Prepare
    payload = encode(message)

    # Execute
    error = rejection(payload, limits=limits)

    # Assert
    assert decode(payload) == message
    assert error.field == field


# --------------------------------------------------------------------------------------------
# Mutation of valid bodies
# --------------------------------------------------------------------------------------------


def paths_in(value: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (map keys and list indices) to a value inside a decoded body."""
    children: list[tuple[Any, object]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    found: list[tuple[Any, ...]] = []
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths_in(child, (*prefix, key)))
    return found


def lookup(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


@settings(deadline=None, max_examples=400)
@given(message=messages, data=st.data())
def test_replacing_any_value_yields_a_message_or_a_wire_error(
    message: Message, data: st.DataObject
) -> None:
    """Swap one value at any depth for a random msgpack value of another type: never a crash."""
    # Prepare
    fields = fields_of(message)
    path = data.draw(st.sampled_from(paths_in(fields)), label="path")
    original = lookup(fields, path)
    replacement = data.draw(
        msgpack_values.filter(lambda v: type(v) is not type(original)), label="replacement"
    )
    lookup(fields, path[:-1])[path[-1]] = replacement

    # Execute
    result = outcome(frame(fields))

    # Assert
    assert isinstance(result, (WireError, *MESSAGE_TYPES))
    if isinstance(result, WireError):
        assert result.field
    else:
        assert decode(encode(result)) == result


@settings(deadline=None, max_examples=200)
@given(message=messages, data=st.data())
def test_deleting_or_adding_any_key_yields_a_message_or_a_wire_error(
    message: Message, data: st.DataObject
) -> None:
    """Remove a key or insert a random one at any depth: never any exception but WireError."""
    # Prepare
    fields = fields_of(message)
    maps = [p for p in [(), *paths_in(fields)] if isinstance(lookup(fields, p), dict)]
    where: dict[str, Any] = lookup(fields, data.draw(st.sampled_from(maps), label="map"))
    delete = data.draw(st.booleans(), label="delete")
    if where and delete:
        del where[data.draw(st.sampled_from(sorted(where)), label="key")]
    else:
        where[data.draw(keys, label="new key")] = data.draw(msgpack_values, label="value")

    # Execute
    result = outcome(frame(fields))

    # Assert
    assert isinstance(result, (WireError, *MESSAGE_TYPES))


# --------------------------------------------------------------------------------------------
# Construction holds messages to the rules decoding enforces
# --------------------------------------------------------------------------------------------

TWO_COLUMNS: Final = np.zeros((2, 2), dtype=np.float32)

# (test id, kind, fields changed from the kind's sample, field the WireError names)
INVALID_BUILDS: Final[list[tuple[str, str, dict[str, Any], str]]] = [
    ("frame-dup-channels", "sensor_frame", {"channels": ("a", "a")}, "channels"),
    ("frame-empty-channel", "sensor_frame", {"channels": ("", "a")}, "channels"),
    ("frame-seq-negative", "sensor_frame", {"seq": -1}, "seq"),
    ("frame-seq-over-int64", "sensor_frame", {"seq": 2**63}, "seq"),
    ("frame-t0-nan", "sensor_frame", {"t0": NAN}, "t0"),
    ("frame-nan-value", "sensor_frame", {"values": TWO_COLUMNS + NAN}, "values"),
    ("frame-no-rows", "sensor_frame", {"values": TWO_COLUMNS[:0]}, "values"),
    ("frame-f8-values", "sensor_frame", {"values": np.zeros((2, 2))}, "values"),
    ("frame-no-timing", "sensor_frame", {"period": None}, "period"),
    ("labels-dup-names", "label_frame", {"names": ("a", "a")}, "names"),
    ("update-round-negative", "model_update", {"round_id": -1}, "round_id"),
    ("update-metric-nan", "model_update", {"metrics": {"loss": NAN}}, "metrics.loss"),
    ("update-metric-text", "model_update", {"metrics": {"loss": "high"}}, "metrics.loss"),
    ("update-created-inf", "model_update", {"created_at": INF}, "created_at"),
    ("update-compression", "model_update", {"compression": {"s": NAN}}, "compression.s"),
    ("update-no-arrays", "model_update", {"arrays": {}}, "arrays"),
    ("update-f8-array", "model_update", {"arrays": {"w": np.zeros(1)}}, "arrays.w"),
    ("update-nan-array", "model_update", {"arrays": {"w": np.full(1, NAN, "<f2")}}, "arrays.w"),
    ("update-9-dims", "model_update", {"arrays": {"w": np.zeros((1,) * 9, "<f4")}}, "arrays.w"),
    ("update-samples-zero", "model_update", {"num_samples": 0}, "num_samples"),
    ("update-bad-id", "model_update", {"update_id": "a/b"}, "update_id"),
    ("global-parent", "global_model", {"parent_version": 5}, "parent_version"),
    ("global-arch-bytes", "global_model", {"architecture": {"x": b"y"}}, "architecture.x"),
    ("global-metric-inf", "global_model", {"metrics": {"acc": INF}}, "metrics.acc"),
    ("status-time-nan", "node_status", {"time": NAN}, "time"),
    ("status-online-int", "node_status", {"online": 1}, "online"),
    ("status-model-version", "node_status", {"model_version": -1}, "model_version"),
    ("status-capabilities", "node_status", {"capabilities": ("a", "a")}, "capabilities"),
    ("status-info-tuple", "node_status", {"info": {"x": (1, 2)}}, "info.x"),
    ("status-info-key", "node_status", {"info": {1: 2}}, "info key"),
    ("event-time-inf", "event", {"time": INF}, "time"),
    ("event-data-nan", "event", {"data": {"x": [NAN]}}, "data.x[0]"),
    ("event-type", "event", {"type": "a b"}, "type"),
    ("command-deadline-nan", "command", {"deadline": NAN}, "deadline"),
    ("command-issued-inf", "command", {"issued_at": -INF}, "issued_at"),
    ("command-params-uint64", "command", {"params": {"x": 2**64}}, "params.x"),
]


@pytest.mark.parametrize(
    ("kind", "changes", "field"),
    [case[1:] for case in INVALID_BUILDS],
    ids=[case[0] for case in INVALID_BUILDS],
)
def test_constructors_reject_what_decoding_would_reject(
    kind: str, changes: dict[str, Any], field: str
) -> None:
    """A message every receiver would drop cannot be built; WireError names the field."""
    # Prepare
    valid = SAMPLES[kind]

    # Execute
    with pytest.raises(WireError) as info:
        dataclasses.replace(valid, **changes)

    # Assert
    assert info.value.field == field


def test_size_limits_are_left_to_the_receiver() -> None:
    """Construction does not apply default size limits; a receiver's WireLimits decide."""
    # Prepare
    capabilities = tuple(f"c{i}" for i in range(5000))
    message = NodeStatus(node="n", online=True, time=0.0, capabilities=capabilities)
    payload = encode(message)

    # Execute
    error = rejection(payload)
    decoded = decode(payload, limits=WireLimits(max_items=5000))

    # Assert
    assert error.field == "capabilities"
    assert decoded == message


def test_float_fields_accept_integers_and_decode_them_as_floats() -> None:
    """An integer time is a valid number; it decodes as the equal float."""
    # Prepare
    message = NodeStatus(node="n", online=True, time=1_700_000_000)

    # Execute
    decoded = decode(encode(message), expect=NodeStatus)

    # Assert
    assert decoded == message
    assert type(decoded.time) is float
