"""What the demo counts, from decoded messages: rounds, presence, alarms, triggers and bytes.

``Tally`` is pure bookkeeping (no MQTT, no clock): the observer feeds it each decoded message
with its payload size and arrival time, the status line reads ``snapshot()``, and the report
reads ``summary()``. It is shared between paho's network thread and the main thread, so every
method takes one lock.

Traffic is counted as MQTT payload bytes, from the node's side of the edge/cloud link:

- **sent** by a node: its model updates, events and status messages;
- **received** by a node: the commands addressed to it and every global model version (counted
  once for each node online when the version appears, and once for a node that comes online
  later and gets the retained copy).

A synchronous round's own cost per node is its train command and the global version it
produced (received) and the update the node sent for it (``ModelUpdate.round_id``). The raw
alternative is every sensor frame the node's devices published, and, without any framing,
``rows x channels x 4`` bytes of float32 readings.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from demo.truth import GroundTruth, Span
from fedge.wire import Command, Event, GlobalModel, LabelFrame, ModelUpdate, NodeStatus


@dataclass
class NodeTraffic:
    """Payload bytes and messages of one node over the whole run."""

    sent: int = 0
    received: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    sensor_bytes: int = 0  # sensor frames of the node's devices, as published
    raw_bytes: int = 0  # the same readings as bare float32
    readings: int = 0


@dataclass
class RoundTraffic:
    """One synchronous round: when it opened and closed, and what it cost each node."""

    round_id: int
    opened_at: float
    closed_at: float | None = None
    version: int | None = None
    asked: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    received: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class Episode:
    """An anomaly episode a node reported: opened, and maybe closed, on one device."""

    node: str
    device: str
    opened_at: float  # wall seconds since the demo started
    start: float  # data time of its first window above the threshold
    closed_at: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Mark:
    """A point on the timeline: a trigger firing, a fine-tune, a failure, an async version."""

    at: float
    node: str
    device: str | None
    what: str
    detail: str = ""
    data: dict[str, float | str] = field(default_factory=dict)  # the event's plain figures


@dataclass(frozen=True)
class Snapshot:
    """What the live status line shows."""

    rounds: int
    versions: int
    nodes_online: int
    anomalies: int
    triggers: int
    finetunes: int
    exchanged: int  # bytes between nodes and the cloud side, both directions
    sensor_bytes: int
    readings: int


class Tally:
    """Counts everything the demo reports; see the module docstring for what counts as what."""

    def __init__(self, nodes: list[str], window_s: float) -> None:
        self.nodes = list(nodes)
        self.window_s = window_s  # data seconds a window spans: slack when matching truth
        self.traffic = {node: NodeTraffic() for node in nodes}
        self.rounds: dict[int, RoundTraffic] = {}
        self.versions: dict[int, tuple[float, str]] = {}  # version -> (at, origin)
        self.online: dict[str, bool] = {}
        self.node_versions: dict[str, int | None] = {}
        self.episodes: list[Episode] = []
        self.marks: list[Mark] = []
        self.events: dict[str, int] = defaultdict(int)
        self.truth = GroundTruth()
        self.series: list[tuple[float, int, int, int]] = []  # (at, exchanged, sensor, raw)
        self._open: dict[tuple[str, str], Episode] = {}
        self._latest: tuple[int, int] | None = None  # (version, size) of the retained model
        self._lock = threading.Lock()

    def _node(self, node: str) -> NodeTraffic:
        if node not in self.traffic:  # a node the demo did not start: counted all the same
            self.traffic[node] = NodeTraffic()
        return self.traffic[node]

    # -- messages --------------------------------------------------------------------------------

    def sensor(self, node: str, rows: int, channels: int, size: int) -> None:
        with self._lock:
            traffic = self._node(node)
            traffic.sensor_bytes += size
            traffic.raw_bytes += rows * channels * 4
            traffic.readings += rows

    def label(self, node: str, frame: LabelFrame, at: float) -> None:
        with self._lock:
            self.truth.add(node, frame, at)

    def status(self, node: str, status: NodeStatus, size: int, at: float) -> None:
        with self._lock:
            self._sent(node, size)
            was_online = self.online.get(node, False)
            self.online[node] = status.online
            if status.online:
                self.node_versions[node] = status.model_version
            if status.online and not was_online and self._latest is not None:
                self._received(node, self._latest[1])  # the broker hands it the retained model

    def event(self, node: str, event: Event, size: int, at: float) -> None:
        with self._lock:
            self._sent(node, size)
            self.events[event.type] += 1
            if event.type == "anomaly" and event.device is not None:
                self._anomaly(node, event, at)
            elif event.type in ("trigger", "finetune", "training_failed", "training_skipped"):
                data = event.data
                detail = " ".join(
                    str(data[k]) for k in ("statistic", "channel", "reason") if data.get(k)
                )
                figures = {
                    k: v
                    for k, v in data.items()
                    if isinstance(v, str | float | int) and not isinstance(v, bool)
                }
                self.marks.append(Mark(at, node, event.device, event.type, detail, figures))

    def update(self, node: str, update: ModelUpdate, size: int, at: float) -> None:
        with self._lock:
            self._sent(node, size)
            current = self.rounds.get(update.round_id) if update.round_id is not None else None
            if current is not None:
                current.sent[node] += size

    def command(self, node: str, command: Command, size: int, at: float) -> None:
        with self._lock:
            self._received(node, size)
            round_id = command.params.get("round_id")
            if command.action != "train" or not isinstance(round_id, int):
                return
            current = self.rounds.setdefault(round_id, RoundTraffic(round_id, at))
            current.asked.append(node)
            current.received[node] += size

    def global_model(self, model: GlobalModel, size: int, at: float) -> None:
        with self._lock:
            if self._latest is not None and model.version <= self._latest[0]:
                return  # the retained copy again (a reconnect): nothing new went out
            self._latest = (model.version, size)
            round_id = model.metrics.get("round")
            origin = "bootstrap" if model.parent_version is None else "async"
            current = None if round_id is None else self.rounds.get(int(round_id))
            if current is not None:
                origin = "round"
                current.closed_at, current.version = at, model.version
            if origin == "async":
                self.marks.append(Mark(at, "", None, "async_version", f"v{model.version}"))
            self.versions[model.version] = (at, origin)
            for node, online in self.online.items():
                if online:
                    self._received(node, size)
                    if current is not None:
                        current.received[node] += size

    def sample(self, at: float) -> None:
        """Record the cumulative traffic now, for the report's traffic-over-time plot."""
        with self._lock:
            exchanged = sum(t.sent + t.received for t in self.traffic.values())
            sensor = sum(t.sensor_bytes for t in self.traffic.values())
            raw = sum(t.raw_bytes for t in self.traffic.values())
            self.series.append((at, exchanged, sensor, raw))

    # -- reading ---------------------------------------------------------------------------------

    def rounds_closed(self) -> int:
        with self._lock:
            return sum(1 for r in self.rounds.values() if r.version is not None)

    def pending_finetunes(self) -> int:
        """Trigger firings whose fine-tune has not reported an outcome yet."""
        with self._lock:
            fired = sum(1 for m in self.marks if m.what == "trigger")
            done = sum(
                1
                for m in self.marks
                if m.what in ("finetune", "training_failed", "training_skipped")
            )
            return max(0, fired - done)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                rounds=sum(1 for r in self.rounds.values() if r.version is not None),
                versions=len(self.versions),
                nodes_online=sum(1 for online in self.online.values() if online),
                anomalies=len(self.episodes),
                triggers=sum(1 for m in self.marks if m.what == "trigger"),
                finetunes=sum(1 for m in self.marks if m.what == "finetune"),
                exchanged=sum(t.sent + t.received for t in self.traffic.values()),
                sensor_bytes=sum(t.sensor_bytes for t in self.traffic.values()),
                readings=sum(t.readings for t in self.traffic.values()),
            )

    def detection(self) -> dict[str, Any]:
        """Injected anomalies matched to reported episodes on the same device (data time)."""
        with self._lock:
            injected = self.truth.anomalies()
            detected = [s for s in injected if any(self._matches(s, e) for e in self.episodes)]
            explained = [
                e
                for e in self.episodes
                if any(self._matches(s, e) for s in self.truth.spans)
                or any(self._after_drift(s, e) for s in self.truth.drifts())
            ]
            return {
                "injected_anomalies": len(injected),
                "detected": len(detected),
                "injected_drifts": len(self.truth.drifts()),
                "episodes": len(self.episodes),
                "episodes_on_injected_behaviour": len(explained),
                "other_episodes": len(self.episodes) - len(explained),
            }

    def _matches(self, span: Span, episode: Episode) -> bool:
        return (span.node, span.device) == (episode.node, episode.device) and span.overlaps(
            episode.start, episode.end, self.window_s
        )

    def _after_drift(self, span: Span, episode: Episode) -> bool:
        """An episode on a drifted device after its drift began: the drift, not a false alarm."""
        same = (span.node, span.device) == (episode.node, episode.device)
        return same and (episode.end is None or episode.end >= span.start)

    # -- internals (lock held) -------------------------------------------------------------------

    def _sent(self, node: str, size: int) -> None:
        traffic = self._node(node)
        traffic.sent += size
        traffic.messages_sent += 1

    def _received(self, node: str, size: int) -> None:
        traffic = self._node(node)
        traffic.received += size
        traffic.messages_received += 1

    def _anomaly(self, node: str, event: Event, at: float) -> None:
        device = event.device
        assert device is not None  # noqa: S101 - checked by the caller
        data, key = event.data, (node, device)
        if data.get("state") == "open" or key not in self._open:
            episode = Episode(node, device, at, _float(data.get("start")) or 0.0)
            self.episodes.append(episode)
            self._open[key] = episode
        if data.get("state") == "closed":
            episode = self._open.pop(key)
            episode.closed_at = at
            episode.end = _float(data.get("end"))


def _float(value: object) -> float | None:
    """``value`` as a float if it is a number (event data is untyped Plain), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
