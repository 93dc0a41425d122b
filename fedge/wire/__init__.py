"""The fedge wire contract: messages and their checksummed msgpack encoding."""

from fedge.wire._fields import Plain, WireLimits
from fedge.wire.codec import SCHEMA_VERSION, decode, encode
from fedge.wire.messages import (
    MESSAGE_TYPES,
    Command,
    Event,
    GlobalModel,
    LabelFrame,
    Message,
    ModelUpdate,
    NodeStatus,
    SensorFrame,
)

__all__ = [
    "MESSAGE_TYPES",
    "SCHEMA_VERSION",
    "Command",
    "Event",
    "GlobalModel",
    "LabelFrame",
    "Message",
    "ModelUpdate",
    "NodeStatus",
    "Plain",
    "SensorFrame",
    "WireLimits",
    "decode",
    "encode",
]
