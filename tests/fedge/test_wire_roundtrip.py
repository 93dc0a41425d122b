"""The wire codec round trip: every valid message decodes back to an equal message.

Also the payload layout (msgpack map then CRC-32), read-only decoded arrays, array
normalisation and the bytes-like payloads ``decode`` accepts.
"""

from __future__ import annotations

import struct
import zlib

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedge.wire import (
    MESSAGE_TYPES,
    SCHEMA_VERSION,
    Command,
    Message,
    ModelUpdate,
    decode,
    encode,
)
from tests.fedge.wire_strategies import (
    KINDS,
    STRATEGIES,
    messages,
)
from tests.fedge.wire_support import (
    FIELD_TYPES,
    SAMPLES,
    T0,
    fields_of,
    frame,
    rejection,
)


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
