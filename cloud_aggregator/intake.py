"""Where every model update enters the aggregator: route, validate, record, fold.

Runs on the MQTT network thread, under the aggregator's lock, and records each update in the
registry before returning (see ``service``). An update is, in this order:

- a *duplicate* if its id is in the registry: counted, nothing else (at-least-once delivery);
- *rejected* if it arrives on another node's topic, answers the open round without having
  been asked (or a second time), names a round the registry never opened, or fails
  ``validation.check_update``: recorded with its reason and reason code, never folded;
- a *round update* if it answers the open round: folded into the round's accumulator;
- otherwise *asynchronous* (a drift fine-tune, or a late answer to a finished round, which is
  re-addressed to no round): folded into the FedBuff buffer with its staleness weight.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import TYPE_CHECKING

from cloud_aggregator.rounds import OpenRound
from cloud_aggregator.validation import check_update, update_norm
from fedge.errors import TopicError
from fedge.topics import NodeTopic
from fedge.wire import ModelUpdate

if TYPE_CHECKING:
    from cloud_aggregator.service import Aggregator

log = logging.getLogger(__name__)


class Intake:
    """Counts what happened to every update: ``counts['accepted']``, ``counts['duplicate']``,
    ``counts['late']`` and one count per rejection code."""

    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator
        self.counts: Counter[str] = Counter()

    def on_update(self, topic: str, update: ModelUpdate) -> None:
        agg = self.aggregator
        try:
            parsed = agg.topics.parse(topic)
        except TopicError:
            parsed = None
        sender = parsed.node if isinstance(parsed, NodeTopic) else None
        with agg.lock:
            self._take(sender, update)
        agg.wake()

    def _take(self, sender: str | None, update: ModelUpdate) -> None:
        agg = self.aggregator
        if agg.registry.get_update(update.update_id) is not None:
            self.counts["duplicate"] += 1
            return
        if sender != update.node:
            self._reject(
                update, "spoofed", f"update from {update.node} arrived on {sender}'s topic"
            )
            return
        current = agg.open_round
        if update.round_id is not None:
            if current is not None and update.round_id == current.round_id:
                self._take_round(current, update)
                return
            known = agg.registry.get_round(update.round_id)
            if known is None or known.model != update.model:
                self._reject(
                    update,
                    "unknown_round",
                    f"update from {update.node} answers round {update.round_id}, "
                    "which this aggregator never opened",
                    keep_round=False,
                )
                return
            self.counts["late"] += 1
            update = dataclasses.replace(update, round_id=None)
        rejection = check_update(
            update,
            agg.current,
            agg.config.buffer.max_staleness,
            max_bytes=agg.config.max_update_bytes,
        )
        if rejection is not None:
            self._reject(update, rejection.code, rejection.reason)
        elif self._accept(update):
            agg.fold_async(update)

    def _take_round(self, current: OpenRound, update: ModelUpdate) -> None:
        agg = self.aggregator
        node = update.node
        if node not in current.selected:
            reason = f"{node} was not asked to train in round {current.round_id}"
            self._reject(update, "not_selected", reason)
            return
        if node in current.delivered:
            reason = (
                f"{node} already delivered update {current.delivered[node]} for round "
                f"{current.round_id}"
            )
            self._reject(update, "repeat", reason)
            return
        rejection = check_update(update, agg.current, 0, max_bytes=agg.config.max_update_bytes)
        if rejection is not None:
            self._reject(update, rejection.code, rejection.reason)
        elif self._accept(update):
            agg.fold_round(current, update)

    def _accept(self, update: ModelUpdate) -> bool:
        recorded = self.aggregator.registry.record_update(
            update, status="accepted", norm=update_norm(update)
        )
        self.counts["accepted" if recorded else "duplicate"] += 1
        return recorded

    def _reject(
        self, update: ModelUpdate, code: str, reason: str, *, keep_round: bool = True
    ) -> None:
        recorded = self.aggregator.registry.record_update(
            update if keep_round else dataclasses.replace(update, round_id=None),
            status="rejected",
            reason=reason,
            reason_code=code,
        )
        if not recorded:
            self.counts["duplicate"] += 1
            return
        self.counts[code] += 1
        self.aggregator.rejects.record(f"update {update.update_id}", reason)

    @property
    def rejected(self) -> int:
        """Updates rejected so far (all reason codes)."""
        return sum(n for code, n in self.counts.items() if code not in _NOT_REJECTED)


_NOT_REJECTED = frozenset({"accepted", "duplicate", "late"})
