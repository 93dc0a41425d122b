"""The exception tree shared by every fedge component.

Each error names the bad value and what happens next; structured detail lives in attributes
so callers can count and route errors without parsing messages.
"""

from __future__ import annotations


class FedgeError(Exception):
    """Base class of every error fedge raises on purpose."""


class ConfigError(FedgeError):
    """A configuration value (file, flag or environment) is missing or invalid."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config {key}: {reason}")
        self.key = key
        self.reason = reason


class WireError(FedgeError):
    """A message failed to decode or validate; ``field`` names the offending part."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class TopicError(FedgeError, ValueError):
    """A topic string or topic level does not follow the ``fedge/v1`` scheme."""


class TransportError(FedgeError):
    """The MQTT connection failed or an operation on it could not complete."""


class PublishQueueFullError(TransportError):
    """Too many QoS >= 1 publishes are awaiting acknowledgement; the caller must back off."""

    def __init__(self, limit: int, topic: str) -> None:
        super().__init__(
            f"publish to {topic} refused: {limit} messages already await acknowledgement "
            "(raise max_pending or slow down)"
        )
        self.limit = limit
        self.topic = topic


class BrokerError(FedgeError):
    """A broker could not be started, configured or stopped."""


class PortInUseError(BrokerError):
    """The port a broker should listen on is taken by another process."""

    def __init__(self, port: int, bind: str) -> None:
        super().__init__(
            f"port {port} on {bind} is already in use (another broker?): stop it or choose "
            "another port"
        )
        self.port = port
        self.bind = bind
