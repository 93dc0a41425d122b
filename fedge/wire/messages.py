"""The messages fedge components exchange, as frozen values.

Each class declares its wire ``KIND``, turns itself into a msgpack-ready map (``to_fields``) and
is rebuilt from a validated map (``from_fields``). Invariants that involve several fields (shape
against channel names, timestamps against rows) are checked in ``__post_init__`` so that a
message built in code is held to the same rules as one that arrived from the network.

Arrays in decoded messages are read-only views on the payload bytes: no copy on the hot path.

The classes live by theme in ``frames``, ``models`` and ``control``; this module joins them into
the ``Message`` union and the ``MESSAGE_TYPES`` registry the codec dispatches on.
"""

from __future__ import annotations

from fedge.wire._base import F4, F8, U1, UPDATE_DTYPES
from fedge.wire.control import Command, Event, NodeStatus
from fedge.wire.frames import LabelFrame, SensorFrame
from fedge.wire.models import GlobalModel, ModelUpdate

__all__ = [
    "F4",
    "F8",
    "MESSAGE_TYPES",
    "U1",
    "UPDATE_DTYPES",
    "Command",
    "Event",
    "GlobalModel",
    "LabelFrame",
    "Message",
    "ModelUpdate",
    "NodeStatus",
    "SensorFrame",
]

Message = SensorFrame | LabelFrame | ModelUpdate | GlobalModel | NodeStatus | Event | Command
MESSAGE_TYPES: tuple[type[Message], ...] = (
    SensorFrame,
    LabelFrame,
    ModelUpdate,
    GlobalModel,
    NodeStatus,
    Event,
    Command,
)
