"""Hostile bodies with a valid checksum: a bad kind, version, map or encoding is refused.

``decode`` turns untrusted bytes into messages; any exception other than ``WireError``
fails these tests.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import msgpack
import pytest

from tests.fedge.wire_support import (
    SAMPLES,
    fields_of,
    frame,
    rejection,
)


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
