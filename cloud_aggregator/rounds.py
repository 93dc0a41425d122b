"""Synchronous rounds: whom to ask, and the bookkeeping of one round while it is open.

A round asks a selection of live, train-capable nodes that run the current global version;
each selected node ends the round in one of three ways: it delivers an update, it answers that
it will not (a ``command_refused`` or ``training_failed`` event naming the round's command), or
it drops out (its Last Will, or silence past the presence timeout). A round is *settled* once
every selected node has ended one of these ways: waiting longer cannot bring more updates.
"""

from __future__ import annotations

import math
import random
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cloud_aggregator.config import RoundConfig
from cloud_aggregator.registry_records import RoundRecord
from cloud_aggregator.strategies.base import Accumulator

_COMMAND_ID = re.compile(r"round\.(\d+)\.[0-9a-f]+")


def command_id(round_id: int) -> str:
    """A fresh command id that names its round, so answers map back even after a restart."""
    return f"round.{round_id}.{secrets.token_hex(4)}"


def round_of(command: str) -> int | None:
    """The round a command id names, or None if it is not a round's command."""
    match = _COMMAND_ID.fullmatch(command)
    return None if match is None else int(match.group(1))


def select_nodes(candidates: Iterable[str], config: RoundConfig, key: str = "") -> list[str]:
    """A random ``fraction`` of ``candidates`` (at least ``min_nodes``, at most ``max_nodes``),
    sorted; empty if there are fewer than ``min_nodes``. The same ``key`` (the aggregator
    uses seed, version and attempt) draws the same sample, so selections are reproducible."""
    pool = sorted(set(candidates))
    if len(pool) < config.min_nodes:
        return []
    count = max(config.min_nodes, math.ceil(config.fraction * len(pool)))
    if config.max_nodes:
        count = min(count, config.max_nodes)
    # Sampling, not security: a predictable draw is what reproducibility wants.
    return sorted(random.Random(key).sample(pool, count))  # noqa: S311


@dataclass
class OpenRound:
    """The round in progress: its registry record plus what arrived so far."""

    record: RoundRecord
    accumulator: Accumulator
    delivered: dict[str, str] = field(default_factory=dict)  # node -> update id
    samples: dict[str, int] = field(default_factory=dict)  # node -> samples behind its update
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # node -> train metrics
    answered: dict[str, str] = field(default_factory=dict)  # node -> why it will not deliver
    dropped: set[str] = field(default_factory=set)
    extensions: int = 0
    aggregate_now: bool = False  # recovered in 'aggregating': finish without waiting

    @property
    def round_id(self) -> int:
        return self.record.round_id

    @property
    def selected(self) -> tuple[str, ...]:
        return self.record.selected

    def outstanding(self) -> list[str]:
        """Selected nodes that may still deliver."""
        ended = self.delivered.keys() | self.answered.keys() | self.dropped
        return [node for node in self.selected if node not in ended]

    def settled(self) -> bool:
        return not self.outstanding()

    def short(self, min_nodes: int) -> bool:
        """Even if every outstanding node delivers, fewer than ``min_nodes`` updates arrive."""
        return len(self.delivered) + len(self.outstanding()) < min_nodes

    def overdue(self, now: float) -> bool:
        return self.record.deadline is not None and now >= self.record.deadline

    def summary(self) -> dict[str, float]:
        """Metrics of the version this round produces: counts plus sample-weighted means."""
        total = sum(self.samples.values())
        out: dict[str, float] = {
            "round": float(self.round_id),
            "updates": float(len(self.delivered)),
            "samples": float(total),
        }
        names = {name for values in self.metrics.values() for name in values}
        for name in sorted(names):
            weighted = [
                (self.samples.get(node, 0), values[name])
                for node, values in self.metrics.items()
                if name in values
            ]
            weight = sum(w for w, _ in weighted)
            if weight > 0:
                out[f"mean_{name}"] = sum(w * v for w, v in weighted) / weight
        return out


def recruits(
    candidates: Sequence[str], current: OpenRound, config: RoundConfig, key: str = ""
) -> list[str]:
    """Extra nodes for a short round: candidates not yet asked, up to what it lacks."""
    asked = set(current.selected)
    fresh = sorted(node for node in candidates if node not in asked)
    lacking = config.min_nodes - len(current.delivered) - len(current.outstanding())
    room = (config.max_nodes - len(asked)) if config.max_nodes else len(fresh)
    count = min(len(fresh), max(lacking, 0), max(room, 0))
    rng = random.Random(f"{key}:{current.round_id}:{current.extensions}")  # noqa: S311
    return sorted(rng.sample(fresh, count))
