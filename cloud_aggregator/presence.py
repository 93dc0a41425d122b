"""Which nodes are alive: retained birth/death status messages plus a heartbeat timeout.

Nodes publish a retained ``node_status`` (``online: true``) on every connect and republish it
as a heartbeat; the broker publishes their Last Will (``online: false``) when they vanish. A
node that says nothing for ``timeout_s`` is treated as gone even if its Will never came (a
half-open TCP connection can take a while to be noticed). Times are the aggregator's clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fedge.wire import NodeStatus


@dataclass
class NodeRecord:
    node: str
    online: bool
    last_seen: float
    capabilities: tuple[str, ...] = ()
    model_version: int | None = None
    births: int = 0
    trainable: bool = True  # False while a node says it has nothing to train on yet


@dataclass
class Presence:
    """Thread-safe view of the fleet built from status messages."""

    timeout_s: float = 90.0
    _nodes: dict[str, NodeRecord] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, status: NodeStatus, now: float) -> NodeRecord:
        """Fold one status message in; return the node's record."""
        with self._lock:
            record = self._nodes.get(status.node)
            if record is None:
                record = self._nodes[status.node] = NodeRecord(
                    status.node, online=False, last_seen=now
                )
            if status.online and not record.online:
                record.births += 1
            record.online = status.online
            record.last_seen = now
            record.capabilities = status.capabilities
            record.model_version = status.model_version
            record.trainable = status.info.get("trainable", True) is not False
            return record

    def live(self, now: float, capability: str | None = None) -> list[str]:
        """Nodes online and heard from within the timeout (with ``capability``), sorted."""
        with self._lock:
            return sorted(
                r.node
                for r in self._nodes.values()
                if r.online
                and now - r.last_seen <= self.timeout_s
                and (capability is None or capability in r.capabilities)
            )

    def is_live(self, node: str, now: float) -> bool:
        with self._lock:
            record = self._nodes.get(node)
            return bool(record and record.online and now - record.last_seen <= self.timeout_s)

    def births(self, node: str) -> int:
        """How often ``node`` came online (0 for a node never heard of)."""
        with self._lock:
            record = self._nodes.get(node)
            return 0 if record is None else record.births

    def records(self) -> list[NodeRecord]:
        with self._lock:
            return [NodeRecord(**vars(r)) for r in self._nodes.values()]
