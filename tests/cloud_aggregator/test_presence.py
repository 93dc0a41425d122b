"""Presence: births, deaths by Last Will, heartbeat timeouts and capabilities."""

from __future__ import annotations

from cloud_aggregator.presence import Presence
from fedge.wire import NodeStatus


def _status(
    node: str, online: bool = True, caps: tuple[str, ...] = ("inference", "train")
) -> NodeStatus:
    return NodeStatus(node, online=online, time=0.0, capabilities=caps)


def test_birth_makes_a_node_live_and_its_will_removes_it() -> None:
    """An online status makes a node live; its Last Will (offline) takes it out."""
    presence = Presence(timeout_s=60)
    presence.observe(_status("n1"), now=100.0)
    presence.observe(_status("n2"), now=100.0)

    presence.observe(_status("n2", online=False), now=110.0)

    assert presence.live(now=120.0) == ["n1"]


def test_silence_beyond_the_timeout_counts_as_gone() -> None:
    """A node that stops heartbeating drops out after the timeout, and returns when heard."""
    presence = Presence(timeout_s=60)
    presence.observe(_status("n1"), now=0.0)

    gone = presence.live(now=61.0)
    presence.observe(_status("n1"), now=70.0)

    assert gone == []
    assert presence.live(now=71.0) == ["n1"]


def test_capability_filter_and_birth_count() -> None:
    """Only nodes that can train are offered rounds; rebirths are counted."""
    presence = Presence()
    presence.observe(_status("pi", caps=("inference",)), now=0.0)
    presence.observe(_status("n1"), now=0.0)
    presence.observe(_status("n1", online=False), now=1.0)
    presence.observe(_status("n1"), now=2.0)

    assert presence.live(now=3.0, capability="train") == ["n1"]
    assert next(r for r in presence.records() if r.node == "n1").births == 2


def test_births_count_each_time_a_node_comes_online() -> None:
    """A node is born on its first online status and again after going offline."""
    presence = Presence()
    assert presence.births("n1") == 0
    presence.observe(NodeStatus("n1", online=True, time=0.0), 1.0)
    presence.observe(NodeStatus("n1", online=True, time=0.0), 2.0)  # a heartbeat
    assert presence.births("n1") == 1
    presence.observe(NodeStatus("n1", online=False, time=0.0), 3.0)
    presence.observe(NodeStatus("n1", online=True, time=0.0), 4.0)
    assert presence.births("n1") == 2
