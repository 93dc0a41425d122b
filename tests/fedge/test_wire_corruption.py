"""Corrupted frames: truncations, bit flips, random and oversized payloads are a WireError.

``decode`` turns untrusted bytes into messages; any exception other than ``WireError``
fails these tests.
"""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedge.errors import WireError
from fedge.wire import (
    Message,
    WireLimits,
    decode,
    encode,
)
from tests.fedge.wire_strategies import (
    KINDS,
    messages,
    msgpack_values,
)
from tests.fedge.wire_support import (
    SAMPLES,
    frame,
    outcome,
    rejection,
)


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
