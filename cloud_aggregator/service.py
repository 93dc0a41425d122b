"""The aggregator service: presence, rounds, the async buffer and the registry, over MQTT.

Threads and durability. Messages arrive on the MQTT client's network thread, and an update is
validated and *recorded in the registry before its handler returns*: the client acknowledges
a QoS 1 publish only after the handler, so an update the broker considers delivered is always
on disk, and one that is not will be delivered again (the aggregator keeps a persistent
session). Everything that takes time or publishes (opening rounds, aggregating, exporting
ONNX) runs on the control thread (``run``). One lock guards the in-memory state.

Recovery. ``start`` rebuilds the in-memory state from the registry before subscribing: the
current version (republished, retained), the round in progress with its recorded updates
folded again, and the accepted async updates folded into a fresh buffer. An update id is
recorded once, so a redelivered update is recognised and never folded twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cloud_aggregator import versions
from cloud_aggregator.config import AggregatorConfig, describe
from cloud_aggregator.intake import Intake
from cloud_aggregator.presence import Presence
from cloud_aggregator.registry import Registry, StrategyState
from cloud_aggregator.rounds import OpenRound, command_id, recruits, round_of, select_nodes
from cloud_aggregator.strategies.base import Arrays, Contribution, ContributionError, Strategy
from cloud_aggregator.strategies.catalog import make_strategy
from cloud_aggregator.strategies.fedbuff import AsyncBuffer
from fedge.mqtt import MqttClient
from fedge.topics import NodeChannel, TopicRoot
from fedge.transport import RejectLog, decoding
from fedge.wire import Command, Event, GlobalModel, ModelUpdate, NodeStatus, encode

log = logging.getLogger(__name__)


@dataclass
class AggregatorStats:
    """Counters for logs, status and tests."""

    rounds_closed: int = 0
    rounds_aborted: int = 0
    extensions: int = 0
    async_versions: int = 0
    commands_sent: int = 0


class Aggregator:
    """One model's aggregator: ``start()``, then ``run()`` on a thread until ``stop()``."""

    def __init__(
        self,
        config: AggregatorConfig,
        client: MqttClient,
        topics: TopicRoot,
        registry: Registry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.client = client
        self.topics = topics
        self.registry = registry
        self.clock = clock
        self.stats = AggregatorStats()
        self.rejects = RejectLog(log)
        self.presence = Presence(config.presence_timeout_s)
        self.strategy: Strategy = make_strategy(
            config.strategy, norm_filter=config.norm_filter, **config.strategy_params
        )
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._current: GlobalModel | None = None
        self._round: OpenRound | None = None
        self._busy: dict[str, int] = {}  # node -> round it was asked in and has not answered
        self._next_round_at = 0.0
        self._waiting_logged = False
        self.buffer = AsyncBuffer(self.strategy)
        self.intake = Intake(self)

    # -- start-up and recovery -------------------------------------------------------------

    @property
    def current(self) -> GlobalModel:
        if self._current is None:
            raise RuntimeError("Aggregator.start was not called")
        return self._current

    @property
    def open_round(self) -> OpenRound | None:
        return self._round

    def start(self) -> None:
        """Recover (or bootstrap) from the registry, subscribe, connect, publish the model."""
        with self._lock:
            self._current = versions.load_or_bootstrap(self.registry, self.config, self.clock())
            self._restore_strategy()
            self._recover_buffer()
            self._recover_round()
        self.client.subscribe(
            self.topics.node_filter(NodeChannel.STATUS),
            decoding(NodeStatus, lambda t, s: self._on_status(s), self.rejects),
        )
        self.client.subscribe(
            self.topics.node_filter(NodeChannel.UPDATES),
            decoding(ModelUpdate, self.intake.on_update, self.rejects),
        )
        self.client.subscribe(
            self.topics.node_filter(NodeChannel.EVENTS),
            decoding(Event, lambda t, e: self._on_event(e), self.rejects),
        )
        self.client.start()
        self._publish_global(self.current)

    def _restore_strategy(self) -> None:
        state = self.registry.load_strategy_state(self.config.model, self.strategy.name)
        if state is not None and state.arrays:
            self.strategy.load_state(state.arrays)

    def _recover_buffer(self) -> None:
        buffer = self.config.buffer
        self.buffer = AsyncBuffer(
            self.strategy,
            k=buffer.k,
            max_wait_s=buffer.max_wait_s,
            staleness=buffer.staleness,
            max_staleness=buffer.max_staleness,
            version=self.current.version,
        )
        for update in self.registry.pending_updates(self.config.model):
            self.fold_async(update)

    def _recover_round(self) -> None:
        record = self.registry.open_round_for(self.config.model)
        if record is None:
            return
        if record.base_version != self.current.version:
            # Only the round's own commit moves the version while it is open; a base behind
            # the current version means the round cannot be finished consistently.
            self._abort(OpenRound(record, self.strategy.accumulator()), "base version moved on")
            return
        self._round = OpenRound(
            record, self.strategy.accumulator(), aggregate_now=record.state == "aggregating"
        )
        for update in self.registry.round_updates(record.round_id):
            self.fold_round(self._round, update)
        log.info(
            "resuming round %d (%d of %d updates in)",
            record.round_id,
            len(self._round.delivered),
            len(record.selected),
        )

    # -- folding (called with the lock held) -------------------------------------------------

    def fold_round(self, current: OpenRound, update: ModelUpdate) -> None:
        """Fold an accepted round update; refuse it in the registry if it does not fit."""
        try:
            current.accumulator.fold(Contribution.from_update(update))
        except ContributionError as exc:
            self.registry.discard_updates([update.update_id], str(exc))
            return
        current.delivered[update.node] = update.update_id
        current.samples[update.node] = update.num_samples
        current.metrics[update.node] = dict(update.metrics)
        self._busy.pop(update.node, None)

    def fold_async(self, update: ModelUpdate) -> None:
        """Fold an accepted asynchronous update into the buffer (or refuse it there)."""
        try:
            refused = self.buffer.fold(
                Contribution.from_update(update), update.base_version, self.clock()
            )
        except ContributionError as exc:
            self.registry.discard_updates([update.update_id], str(exc))
            return
        if refused is not None:
            self.registry.discard_updates([update.update_id], refused.reason)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def wake(self) -> None:
        self._wake.set()

    # -- presence and events ---------------------------------------------------------------

    def _on_status(self, status: NodeStatus) -> None:
        with self._lock:
            before = self.presence.births(status.node)
            record = self.presence.observe(status, self.clock())
            self.registry.node_seen(status.node, online=status.online, status=status.info)
            if record.births > before:
                self._busy.pop(status.node, None)  # a restarted node lost its training job
            current = self._round
            if current is not None and not status.online and status.node in current.selected:
                current.dropped.add(status.node)
        self._wake.set()

    def _on_event(self, event: Event) -> None:
        if event.type not in ("command_refused", "training_failed"):
            return
        asked = event.data.get("command_id")
        with self._lock:
            current = self._round
            if not isinstance(asked, str) or current is None:
                return
            if round_of(asked) == current.round_id and event.node in current.selected:
                reason = str(event.data.get("reason", event.type))
                current.answered.setdefault(event.node, f"{event.type}: {reason}")
                self._busy.pop(event.node, None)
        self._wake.set()

    # -- the control loop ------------------------------------------------------------------

    def run(self, *, until_done: bool = False) -> None:
        """Drive rounds and the buffer until ``stop()`` (or, with ``until_done``, until the
        configured number of rounds has closed and nothing is left to aggregate)."""
        while not self._stop.is_set():
            self.tick()
            if until_done and self.done:
                return
            self._wake.wait(0.2)
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def done(self) -> bool:
        """The configured rounds have closed (never, with rounds = 0) and no round is open."""
        rounds = self.config.rounds.rounds
        with self._lock:
            return bool(rounds) and self._round is None and self.stats.rounds_closed >= rounds

    def tick(self) -> None:
        """One step: finish a round that is due, flush a ready buffer, open the next round."""
        with self._lock:
            now = self.clock()
            current = self._round
            if current is not None:
                for node in current.outstanding():
                    if not self.presence.is_live(node, now):
                        current.dropped.add(node)
                if current.short(self.config.rounds.min_nodes):
                    self._recruit(current, now)
                if current.aggregate_now or current.settled() or current.overdue(now):
                    self._finish(current, now)
            if self._round is None:
                if self.buffer.count and self.buffer.ready(now):
                    self._flush_buffer(now)
                if self._wants_round(now):
                    self._open(now)

    def _wants_round(self, now: float) -> bool:
        rounds = self.config.rounds
        closed = self.stats.rounds_closed
        due = rounds.enabled and now >= self._next_round_at
        return due and (rounds.rounds == 0 or closed < rounds.rounds)

    def candidates(self, now: float) -> list[str]:
        """Live, train-capable nodes that run the current version and have data to train on
        (and, with only_finished, are not still busy with an earlier round)."""
        version = self.current.version
        in_sync = {
            r.node for r in self.presence.records() if r.model_version == version and r.trainable
        }
        live = self.presence.live(now, capability="train")
        busy = self._busy if self.config.rounds.only_finished else {}
        return [node for node in live if node in in_sync and node not in busy]

    def _open(self, now: float) -> None:
        rounds = self.config.rounds
        candidates = self.candidates(now)
        key = f"{self.config.seed}:{self.current.version}:{self.stats.rounds_aborted}"
        selected = select_nodes(candidates, rounds, key)
        if not selected:
            if not self._waiting_logged:
                log.info(
                    "round waits for %d train-capable nodes on version %d; %d ready",
                    rounds.min_nodes,
                    self.current.version,
                    len(candidates),
                )
                self._waiting_logged = True
            return
        self._waiting_logged = False
        deadline = now + rounds.deadline_s
        record = self.registry.open_round(
            self.config.model,
            self.current.version,
            selected=selected,
            deadline=deadline,
            config=describe(self.config),
        )
        self._round = OpenRound(record, self.strategy.accumulator())
        self._send_train(record.round_id, selected, deadline, now)
        log.info("round %d: asked %s on version %d", record.round_id, selected, record.base_version)

    def _send_train(self, round_id: int, nodes: list[str], deadline: float, now: float) -> None:
        rounds = self.config.rounds
        params = {
            "round_id": round_id,
            "base_version": self.current.version,
            "epochs": rounds.epochs,
            "lr": rounds.lr,
            **self.strategy.client_config(),
        }
        for node in nodes:
            command = Command(node, "train", command_id(round_id), now, params, deadline)
            topic = str(self.topics.node(node, NodeChannel.COMMANDS))
            self.client.publish(topic, encode(command), qos=1)
            self._busy[node] = round_id
            self.stats.commands_sent += 1

    def _finish(self, current: OpenRound, now: float) -> None:
        """Aggregate once enough updates are in and no more can come (or time is up); a
        short round waits for its deadline (nodes that join are recruited meanwhile), then
        is extended or aborted as configured."""
        rounds = self.config.rounds
        enough = len(current.delivered) >= rounds.min_nodes
        if enough and (current.aggregate_now or current.settled() or current.overdue(now)):
            self._aggregate(current, now)
            return
        if not current.overdue(now) and not current.aggregate_now:
            return
        if rounds.on_short == "extend" and current.extensions < rounds.max_extensions:
            self._extend(current, now)
            return
        self._abort(
            current,
            f"{len(current.delivered)} of the {rounds.min_nodes} updates needed arrived",
        )

    def _recruit(self, current: OpenRound, now: float) -> None:
        """A round that can no longer reach its minimum asks nodes that joined meanwhile."""
        extra = recruits(self.candidates(now), current, self.config.rounds, str(self.config.seed))
        if not extra:
            return
        deadline = current.record.deadline or now + self.config.rounds.deadline_s
        current.record = self.registry.extend_round(
            current.round_id, deadline=deadline, selected=[*current.selected, *extra]
        )
        self._send_train(current.round_id, extra, deadline, now)
        log.info("round %d recruited %s", current.round_id, extra)

    def _extend(self, current: OpenRound, now: float) -> None:
        current.extensions += 1
        deadline = now + self.config.rounds.deadline_s
        current.record = self.registry.extend_round(
            current.round_id, deadline=deadline, selected=list(current.selected)
        )
        self._recruit(current, now)
        self.stats.extensions += 1
        log.info(
            "round %d extended (%d of %d): %d updates in",
            current.round_id,
            current.extensions,
            self.config.rounds.max_extensions,
            len(current.delivered),
        )

    def _abort(self, current: OpenRound, reason: str) -> None:
        self.registry.abort_round(current.round_id, reason)
        self.registry.discard_updates(
            current.delivered.values(), f"round {current.round_id} aborted: {reason}"
        )
        self._round = None
        self._next_round_at = self.clock() + self.config.rounds.interval_s
        self.stats.rounds_aborted += 1
        log.warning("round %d aborted: %s", current.round_id, reason)

    def _aggregate(self, current: OpenRound, now: float) -> None:
        self.registry.start_aggregation(current.round_id)
        delta = current.accumulator.result()
        excluded = {e.update_id: e.reason for e in current.accumulator.rejected}
        for update_id, reason in excluded.items():
            self.registry.discard_updates([update_id], reason)
        applied = [uid for uid in current.delivered.values() if uid not in excluded]
        if not applied:
            self._abort(current, "the strategy excluded every update")
            return
        result = self._next_version(delta, current.summary(), now)
        self.registry.commit_aggregation(
            result, applied, round_id=current.round_id, strategy_state=self._state(result)
        )
        self._round = None
        self._next_round_at = now + self.config.rounds.interval_s
        self.stats.rounds_closed += 1
        self._advance(result)
        log.info(
            "round %d closed: version %d from %d updates", current.round_id, result.version,
            len(applied),
        )  # fmt: skip

    def _flush_buffer(self, now: float) -> None:
        flushed = self.buffer.flush()
        for exclusion in flushed.rejected:
            self.registry.discard_updates([exclusion.update_id], exclusion.reason)
        refused = {e.update_id for e in flushed.rejected}
        applied = [uid for uid in flushed.update_ids if uid not in refused]
        if not applied:
            return
        metrics = {
            "updates": float(len(applied)),
            "mean_staleness": sum(flushed.staleness) / len(flushed.staleness),
        }
        result = self._next_version(flushed.delta, metrics, now)
        self.registry.commit_aggregation(result, applied, strategy_state=self._state(result))
        self.stats.async_versions += 1
        self._advance(result)
        log.info("async buffer: version %d from %d updates", result.version, len(applied))

    def _next_version(self, delta: Arrays, metrics: dict[str, float], now: float) -> GlobalModel:
        return versions.next_version(self.strategy, self.current, delta, metrics, now)

    def _state(self, result: GlobalModel) -> StrategyState:
        return versions.strategy_state(self.strategy, result.version)

    def _advance(self, result: GlobalModel) -> None:
        self._current = result
        self.buffer.advance_to(result.version)
        self._publish_global(result)

    def _publish_global(self, model: GlobalModel) -> None:
        topic = str(self.topics.model(model.model))
        self.client.publish(topic, encode(model), qos=1, retain=True)
