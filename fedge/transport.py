"""The transport seam: fedge's own message type, a small protocol, and an in-memory hub.

Components talk to a ``Transport``: the real one is ``fedge.mqtt.MqttClient``; the in-memory
one here implements the same semantics (wildcard filters, retained messages, per-handler
isolation) for unit tests of protocol logic without a broker. ``decoding`` turns a bytes handler
into a typed one at the border, so a hostile payload reaches the component as a counted and
logged ``WireError``, never as an exception in the network thread.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from fedge.errors import WireError
from fedge.wire import Message as WireMessage
from fedge.wire import decode

log = logging.getLogger(__name__)

M = TypeVar("M", bound=WireMessage)


@dataclass(frozen=True)
class Message:
    """One received MQTT message, free of any client library's types."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


MessageHandler = Callable[[Message], None]


class Transport(Protocol):
    """What a component needs from a broker connection."""

    def subscribe(self, topic_filter: str, handler: MessageHandler, qos: int = 1) -> None:
        """Route messages matching ``topic_filter`` to ``handler`` (kept across reconnects)."""

    def unsubscribe(self, topic_filter: str) -> None:
        """Stop routing ``topic_filter``."""

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Send ``payload``; QoS >= 1 waits up to ``timeout`` for queue room (backpressure)."""

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every QoS >= 1 publish is acknowledged; False if ``timeout`` ran out."""

    def close(self) -> None:
        """Disconnect cleanly."""


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching with ``+`` (one level) and ``#`` (the rest, including none)."""
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    if topic.startswith("$") and f_levels[0] in ("+", "#"):
        return False  # wildcards never match $SYS-style topics at the first level
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels) or (level != "+" and level != t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)


class RejectLog:
    """Counts rejected messages by reason and logs each distinct reason once.

    A flood of identical bad frames costs one log line, while every rejection stays visible
    in the counters (``total``, ``by_reason``) for metrics and tests.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log
        self._lock = threading.Lock()
        self.by_reason: Counter[str] = Counter()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_reason.values())

    def record(self, source: str, reason: str) -> None:
        with self._lock:
            self.by_reason[reason] += 1
            first = self.by_reason[reason] == 1
        if first:
            self._log.warning(
                "rejected message from %s: %s (repeats are counted, not logged)", source, reason
            )

    def record_wire_error(self, topic: str, error: WireError) -> None:
        self.record(topic, f"{error.field}: {error.reason}")


def decoding(
    expect: type[M], handler: Callable[[str, M], None], rejects: RejectLog
) -> MessageHandler:
    """Wrap a typed handler: decode each payload as ``expect``; count and log what fails."""

    def on_message(message: Message) -> None:
        try:
            decoded = decode(message.payload, expect)
        except WireError as exc:
            rejects.record_wire_error(message.topic, exc)
            return
        handler(message.topic, decoded)

    return on_message


class InMemoryHub:
    """A broker in a dict: routes publishes to every matching subscription, keeps retained."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._retained: dict[str, Message] = {}
        self._subscriptions: list[tuple[InMemoryTransport, str, MessageHandler]] = []

    def connect(self) -> InMemoryTransport:
        return InMemoryTransport(self)

    def route(self, message: Message) -> None:
        with self._lock:
            if message.retain:
                if message.payload:
                    self._retained[message.topic] = message
                else:
                    self._retained.pop(message.topic, None)  # empty retained payload clears
            targets = [(t, h) for t, f, h in self._subscriptions if topic_matches(f, message.topic)]
        for transport, handler in targets:
            transport.deliver(
                handler, Message(message.topic, message.payload, message.qos, retain=False)
            )

    def add_subscription(
        self, transport: InMemoryTransport, topic_filter: str, handler: MessageHandler
    ) -> None:
        with self._lock:
            self._subscriptions.append((transport, topic_filter, handler))
            retained = [m for t, m in self._retained.items() if topic_matches(topic_filter, t)]
        for message in retained:
            transport.deliver(handler, message)

    def remove_subscriptions(self, transport: InMemoryTransport, topic_filter: str | None) -> None:
        with self._lock:
            self._subscriptions = [
                s
                for s in self._subscriptions
                if s[0] is not transport or (topic_filter is not None and s[1] != topic_filter)
            ]


class InMemoryTransport:
    """A ``Transport`` on an ``InMemoryHub``; delivery is synchronous, in the publisher's thread."""

    def __init__(self, hub: InMemoryHub) -> None:
        self._hub = hub
        self.handler_errors = 0
        self.closed = False

    def subscribe(self, topic_filter: str, handler: MessageHandler, qos: int = 1) -> None:
        self._hub.add_subscription(self, topic_filter, handler)

    def unsubscribe(self, topic_filter: str) -> None:
        self._hub.remove_subscriptions(self, topic_filter)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        timeout: float | None = None,
    ) -> None:
        if self.closed:
            raise RuntimeError("publish on a closed transport")
        self._hub.route(Message(topic, bytes(payload), qos, retain))

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        self.closed = True
        self._hub.remove_subscriptions(self, None)

    def deliver(self, handler: MessageHandler, message: Message) -> None:
        try:
            handler(message)
        except Exception:  # a handler's bug must not break the publisher: count and log it
            self.handler_errors += 1
            log.exception("handler failed on %s", message.topic)
