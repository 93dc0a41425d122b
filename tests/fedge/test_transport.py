"""Unit tests of the transport seam: filter matching, the in-memory hub, typed decoding."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fedge.transport import InMemoryHub, Message, RejectLog, decoding, topic_matches
from fedge.wire import Event, SensorFrame, encode


def _frame(seq: int = 0) -> SensorFrame:
    return SensorFrame("pump-1", seq, ("a", "b"), np.ones((3, 2), np.float32), t0=0.0, period=1.0)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b/c", "a/b/c", True),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("+/+", "a/b", True),
        ("+/+", "a/b/c", False),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
        ("+/x", "$SYS/x", False),
        ("#", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
    ],
)
def test_topic_matches_follows_mqtt_rules(topic_filter: str, topic: str, expected: bool) -> None:
    """Wildcards match as the MQTT specification says, including the $-topic exception."""
    assert topic_matches(topic_filter, topic) is expected


def test_hub_routes_to_matching_subscribers_only() -> None:
    """A publish reaches every matching subscription on every transport, and no other."""
    hub = InMemoryHub()
    a, b = hub.connect(), hub.connect()
    seen_a: list[str] = []
    seen_b: list[str] = []
    a.subscribe("s/+/x", lambda m: seen_a.append(m.topic))
    b.subscribe("s/#", lambda m: seen_b.append(m.topic))

    a.publish("s/1/x", b"1")
    b.publish("s/1/y", b"2")

    assert seen_a == ["s/1/x"]
    assert seen_b == ["s/1/x", "s/1/y"]


def test_hub_keeps_retained_for_late_subscribers_and_clears_on_empty() -> None:
    """The last retained message goes to later subscribers; an empty retained one clears it."""
    hub = InMemoryHub()
    pub = hub.connect()
    pub.publish("m/model/global", b"v1", retain=True)
    pub.publish("m/model/global", b"v2", retain=True)
    late: list[Message] = []

    hub.connect().subscribe("m/+/global", late.append)
    pub.publish("m/model/global", b"", retain=True)
    later: list[Message] = []
    hub.connect().subscribe("m/#", later.append)

    assert [m.payload for m in late] == [b"v2", b""]
    assert late[0].retain is True
    assert later == []


def test_handler_exception_is_isolated_and_counted() -> None:
    """A failing handler does not stop delivery to the others nor reach the publisher."""
    hub = InMemoryHub()
    sub = hub.connect()
    got: list[bytes] = []

    def broken(message: Message) -> None:
        raise RuntimeError("bug in a component")

    sub.subscribe("t", broken)
    sub.subscribe("t", lambda m: got.append(m.payload))

    hub.connect().publish("t", b"x")

    assert got == [b"x"]
    assert sub.handler_errors == 1


def test_closed_transport_receives_nothing() -> None:
    """Closing a transport removes its subscriptions from the hub."""
    hub = InMemoryHub()
    sub = hub.connect()
    got: list[Message] = []
    sub.subscribe("#", got.append)

    sub.close()
    hub.connect().publish("t", b"x")

    assert got == []


def test_decoding_hands_typed_messages_and_counts_rejects(caplog: pytest.LogCaptureFixture) -> None:
    """Valid payloads reach the typed handler; bad ones are counted and logged once per reason."""
    rejects = RejectLog()
    frames: list[tuple[str, SensorFrame]] = []
    handler = decoding(SensorFrame, lambda t, f: frames.append((t, f)), rejects)
    other_kind = encode(Event("n1", "anomaly", 1.0, "e1"))

    with caplog.at_level(logging.WARNING):
        handler(Message("s/n1/d", encode(_frame(7))))
        for _ in range(3):
            handler(Message("s/n1/d", b"\x00garbage"))
        handler(Message("s/n1/d", other_kind))

    assert [(t, f.seq) for t, f in frames] == [("s/n1/d", 7)]
    assert rejects.total == 4
    assert rejects.by_reason["kind: expected 'sensor_frame', got 'event'"] == 1
    assert sum("rejected message" in r.getMessage() for r in caplog.records) == 2
