"""Control-plane messages: node presence, events a node reports and commands sent to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from fedge.errors import WireError
from fedge.wire._base import LIMITS, ValueEquality, check_plain_map
from fedge.wire._fields import (
    FieldReader,
    Plain,
    check_float,
    check_ident,
    check_int,
    check_names,
    check_text,
)


@dataclass(frozen=True, eq=False)
class NodeStatus(ValueEquality):
    """A node's presence: retained birth (``online``), heartbeat, or death (its Last Will)."""

    KIND: ClassVar[str] = "node_status"

    node: str
    online: bool
    time: float
    software_version: str = ""
    model: str | None = None
    model_version: int | None = None
    capabilities: tuple[str, ...] = ()
    info: Mapping[str, Plain] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_ident("node", "node", self.node)
        if not isinstance(self.online, bool):
            raise WireError("online", f"expected a bool, got {type(self.online).__name__}")
        check_float("time", self.time)
        check_text("software_version", self.software_version, LIMITS.max_name_len)
        if self.model is not None:
            check_ident("model", "model", self.model)
        if self.model_version is not None:
            check_int("model_version", self.model_version, lo=0)
        check_names("capabilities", self.capabilities, LIMITS)
        check_plain_map("info", self.info)

    def to_fields(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "online": self.online,
            "time": self.time,
            "software_version": self.software_version,
            "model": self.model,
            "model_version": self.model_version,
            "capabilities": list(self.capabilities),
            "info": dict(self.info),
        }

    @classmethod
    def from_fields(cls, r: FieldReader) -> Self:
        return cls(
            node=r.ident("node", "node"),
            online=r.boolean("online"),
            time=r.number("time"),
            software_version=r.text("software_version", max_len=r.limits.max_name_len),
            model=r.opt_ident("model", "model"),
            model_version=r.opt_integer("model_version", lo=0),
            capabilities=r.names("capabilities"),
            info=r.plain_map("info"),
        )


@dataclass(frozen=True, eq=False)
class Event(ValueEquality):
    """Something a node reports: an anomaly, a trigger firing, a fine-tune result, an error.

    ``type`` names the event (an id, for example ``anomaly``); ``data`` carries its details.
    """

    KIND: ClassVar[str] = "event"

    node: str
    type: str
    time: float
    event_id: str
    device: str | None = None
    data: Mapping[str, Plain] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_ident("node", "node", self.node)
        check_ident("type", "event type", self.type)
        check_ident("event_id", "event", self.event_id)
        check_float("time", self.time)
        if self.device is not None:
            check_ident("device", "device", self.device)
        check_plain_map("data", self.data)

    def to_fields(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "type": self.type,
            "time": self.time,
            "event_id": self.event_id,
            "device": self.device,
            "data": dict(self.data),
        }

    @classmethod
    def from_fields(cls, r: FieldReader) -> Self:
        return cls(
            node=r.ident("node", "node"),
            type=r.ident("type", "event type"),
            time=r.number("time"),
            event_id=r.ident("event_id", "event"),
            device=r.opt_ident("device", "device"),
            data=r.plain_map("data"),
        )


@dataclass(frozen=True, eq=False)
class Command(ValueEquality):
    """An instruction to one node, for example ``train`` with round id, base version, epochs.

    ``deadline`` (seconds since the epoch) lets a node refuse work that can no longer count.
    """

    KIND: ClassVar[str] = "command"

    node: str
    action: str
    command_id: str
    issued_at: float
    params: Mapping[str, Plain] = field(default_factory=dict)
    deadline: float | None = None

    def __post_init__(self) -> None:
        check_ident("node", "node", self.node)
        check_ident("action", "action", self.action)
        check_ident("command_id", "command", self.command_id)
        check_float("issued_at", self.issued_at)
        check_plain_map("params", self.params)
        if self.deadline is not None:
            check_float("deadline", self.deadline)

    def to_fields(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "action": self.action,
            "command_id": self.command_id,
            "issued_at": self.issued_at,
            "params": dict(self.params),
            "deadline": self.deadline,
        }

    @classmethod
    def from_fields(cls, r: FieldReader) -> Self:
        return cls(
            node=r.ident("node", "node"),
            action=r.ident("action", "action"),
            command_id=r.ident("command_id", "command"),
            issued_at=r.number("issued_at"),
            params=r.plain_map("params"),
            deadline=r.opt_number("deadline"),
        )
