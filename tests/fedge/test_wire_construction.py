"""Construction holds messages to the rules decoding enforces."""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import numpy as np
import pytest

from fedge.errors import WireError
from fedge.wire import (
    NodeStatus,
    WireLimits,
    decode,
    encode,
)
from tests.fedge.wire_support import (
    INF,
    NAN,
    SAMPLES,
    rejection,
)

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
