"""Hostile bodies with a valid checksum: pickles, extension types, nesting and size limits.

Nothing is ever unpickled, and every bound comes from the decoder's ``WireLimits``.
"""

from __future__ import annotations

import pickle
import struct
import zlib
from collections.abc import Callable

import msgpack
import numpy as np
import pytest

from fedge.wire import (
    Command,
    Event,
    GlobalModel,
    Message,
    ModelUpdate,
    NodeStatus,
    WireLimits,
    decode,
    encode,
)
from tests.fedge.wire_support import (
    ARRAY_SITES,
    SAMPLES,
    SITE_IDS,
    T0,
    fields_of,
    frame,
    hostile_array,
    rejection,
    set_path,
)

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
