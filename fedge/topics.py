"""Topic names of the ``fedge/v1`` scheme as frozen, self-validating values.

Every topic a component publishes or subscribes to is built here, and every topic it receives
is parsed here, so the scheme lives in one place::

    fedge/v1/sensors/{node}/{device}     device  -> edge node
    fedge/v1/labels/{node}/{device}      replay  -> evaluator (ground truth)
    fedge/v1/nodes/{node}/status         node    -> all (retained birth, Last Will death)
    fedge/v1/nodes/{node}/events         node    -> all
    fedge/v1/nodes/{node}/updates        node    -> aggregator
    fedge/v1/nodes/{node}/commands       aggregator -> node
    fedge/v1/models/{model}/global       aggregator -> nodes (retained)

The prefix is configurable (``TopicRoot("site-a/fedge/v1")``) so that several deployments, or
several tests, can share one broker without seeing each other's traffic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from fedge.errors import TopicError

DEFAULT_PREFIX: Final = "fedge/v1"
ID_MAX_LEN: Final = 64
_ID_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_PREFIX_LEVEL_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def validate_id(what: str, value: object) -> str:
    """Return ``value`` if it is a valid node, device or model id, else raise TopicError.

    Ids become single topic levels, so they may not contain ``/``, ``+``, ``#``, whitespace or
    control characters, may not be empty and are at most 64 characters of ``[A-Za-z0-9_.:-]``.
    """
    if not isinstance(value, str):
        raise TopicError(f"{what} id must be a string, got {type(value).__name__}")
    if not _ID_RE.fullmatch(value):
        shown = value if len(value) <= ID_MAX_LEN else value[:ID_MAX_LEN] + "..."
        raise TopicError(
            f"{what} id {shown!r} is invalid: use 1-{ID_MAX_LEN} characters of A-Z a-z 0-9 _ . : -"
        )
    return value


class NodeChannel(StrEnum):
    """The per-node topics under ``nodes/{node}/``."""

    STATUS = "status"
    EVENTS = "events"
    UPDATES = "updates"
    COMMANDS = "commands"


@dataclass(frozen=True)
class TopicRoot:
    """The prefix all topics of one deployment live under; builds and parses its topics."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str):
            raise TopicError(f"topic prefix must be a string, got {type(self.prefix).__name__}")
        levels = self.prefix.split("/")
        if not all(_PREFIX_LEVEL_RE.fullmatch(level) for level in levels):
            raise TopicError(
                f"topic prefix {self.prefix!r} is invalid: levels must be non-empty and use "
                "A-Z a-z 0-9 _ . : - only"
            )

    def sensors(self, node: str, device: str) -> SensorTopic:
        return SensorTopic(node, device, self)

    def labels(self, node: str, device: str) -> LabelTopic:
        return LabelTopic(node, device, self)

    def node(self, node: str, channel: NodeChannel) -> NodeTopic:
        return NodeTopic(node, channel, self)

    def model(self, model: str) -> ModelTopic:
        return ModelTopic(model, self)

    def sensors_filter(self, node: str | None = None) -> str:
        """Subscription filter for the sensor frames of one node, or of every node."""
        return f"{self.prefix}/sensors/{_level(node, 'node')}/+"

    def labels_filter(self, node: str | None = None) -> str:
        return f"{self.prefix}/labels/{_level(node, 'node')}/+"

    def node_filter(self, channel: NodeChannel, node: str | None = None) -> str:
        """Subscription filter for one channel (for example ``status``) of one or every node."""
        return f"{self.prefix}/nodes/{_level(node, 'node')}/{channel.value}"

    def models_filter(self) -> str:
        return f"{self.prefix}/models/+/global"

    def parse(self, topic: str) -> Topic:
        """Parse a concrete topic string into its value object; raise TopicError if foreign."""
        if not isinstance(topic, str):
            raise TopicError(f"topic must be a string, got {type(topic).__name__}")
        head = self.prefix + "/"
        if not topic.startswith(head):
            raise TopicError(f"topic {topic!r} is not under prefix {self.prefix!r}")
        levels = topic[len(head) :].split("/")
        try:
            match levels:
                case ["sensors", node, device]:
                    return SensorTopic(node, device, self)
                case ["labels", node, device]:
                    return LabelTopic(node, device, self)
                case ["nodes", node, channel]:
                    return NodeTopic(node, NodeChannel(channel), self)
                case ["models", model, "global"]:
                    return ModelTopic(model, self)
        except ValueError as exc:  # unknown NodeChannel, or TopicError from an id
            raise TopicError(f"topic {topic!r} is not a fedge topic: {exc}") from exc
        raise TopicError(f"topic {topic!r} is not a fedge topic")


def _level(value: str | None, what: str) -> str:
    return "+" if value is None else validate_id(what, value)


@dataclass(frozen=True)
class SensorTopic:
    """``{prefix}/sensors/{node}/{device}``: sensor frames from one device to its edge node."""

    node: str
    device: str
    root: TopicRoot = field(default=TopicRoot(), compare=True)

    def __post_init__(self) -> None:
        validate_id("node", self.node)
        validate_id("device", self.device)

    def __str__(self) -> str:
        return f"{self.root.prefix}/sensors/{self.node}/{self.device}"


@dataclass(frozen=True)
class LabelTopic:
    """``{prefix}/labels/{node}/{device}``: ground truth for evaluation; nodes never read it."""

    node: str
    device: str
    root: TopicRoot = field(default=TopicRoot())

    def __post_init__(self) -> None:
        validate_id("node", self.node)
        validate_id("device", self.device)

    def __str__(self) -> str:
        return f"{self.root.prefix}/labels/{self.node}/{self.device}"


@dataclass(frozen=True)
class NodeTopic:
    """``{prefix}/nodes/{node}/{channel}``: what a node says, or what is said to it."""

    node: str
    channel: NodeChannel
    root: TopicRoot = field(default=TopicRoot())

    def __post_init__(self) -> None:
        validate_id("node", self.node)
        if not isinstance(self.channel, NodeChannel):
            raise TopicError(f"node channel must be a NodeChannel, got {self.channel!r}")

    def __str__(self) -> str:
        return f"{self.root.prefix}/nodes/{self.node}/{self.channel.value}"


@dataclass(frozen=True)
class ModelTopic:
    """``{prefix}/models/{model}/global``: the retained current global model."""

    model: str
    root: TopicRoot = field(default=TopicRoot())

    def __post_init__(self) -> None:
        validate_id("model", self.model)

    def __str__(self) -> str:
        return f"{self.root.prefix}/models/{self.model}/global"


Topic = SensorTopic | LabelTopic | NodeTopic | ModelTopic
