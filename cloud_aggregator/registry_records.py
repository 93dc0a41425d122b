"""What the registry hands back: immutable records of versions, rounds, nodes and updates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from fedge.models import ModelSpec
from fedge.wire import GlobalModel, Plain

Origin = Literal["bootstrap", "round", "async"]
RoundState = Literal["open", "aggregating", "closed", "aborted"]
UpdateStatus = Literal["accepted", "rejected", "applied"]
IN_PROGRESS: tuple[RoundState, ...] = ("open", "aggregating")


@dataclass(frozen=True)
class VersionInfo:
    """A model version's metadata, without its weights (cheap to list)."""

    model: str
    version: int
    parent_version: int | None
    origin: Origin
    round_id: int | None  # the round that produced it, for origin 'round'
    arrays_sha256: str  # content address of the weights
    onnx_sha256: str
    metrics: Mapping[str, float]
    created_at: float  # as the producer stamped it (``GlobalModel.created_at``)
    committed_at: float  # when the registry stored it


@dataclass(frozen=True)
class VersionRecord:
    """A stored model version: its metadata and the ``GlobalModel`` to publish."""

    info: VersionInfo
    global_model: GlobalModel

    @property
    def model(self) -> str:
        return self.info.model

    @property
    def version(self) -> int:
        return self.info.version

    @property
    def arrays(self) -> Mapping[str, NDArray[np.float32]]:
        return self.global_model.arrays

    def spec(self) -> ModelSpec:
        """The architecture as a ``ModelSpec`` (``ConfigError`` if it is not one)."""
        return ModelSpec.from_plain(self.global_model.architecture)


@dataclass(frozen=True)
class RoundRecord:
    """One synchronous training round and where it stands."""

    round_id: int
    model: str
    base_version: int
    state: RoundState
    config: Mapping[str, Plain]  # strategy, hyper-parameters, min/max nodes
    selected: tuple[str, ...]  # the nodes asked to train
    started_at: float
    deadline: float | None
    closed_at: float | None
    result_version: int | None  # set when closed
    reason: str | None  # set when aborted

    @property
    def in_progress(self) -> bool:
        """Open or aggregating: the round a restarted aggregator resumes."""
        return self.state in IN_PROGRESS


@dataclass(frozen=True)
class UpdateRecord:
    """The ledger entry of one update id (its arrays are not loaded)."""

    update_id: str
    node: str
    model: str
    base_version: int
    round_id: int | None
    received_at: float
    status: UpdateStatus
    reason: str | None  # why it was rejected
    reason_code: str | None  # the reason's class, for counting
    num_samples: int
    norm: float | None
    applied_version: int | None


@dataclass(frozen=True)
class NodeRecord:
    """A node as last seen: presence from its retained status, times from any message."""

    node: str
    first_seen: float
    last_seen: float
    online: bool
    status: Mapping[str, Plain] | None


@dataclass(frozen=True)
class Contribution:
    """What one node gave: samples and rounds that reached a version, and what was refused."""

    node: str
    samples: int  # training samples behind its applied updates
    rounds: int  # distinct rounds one of its updates was applied in
    accepted: int  # updates that passed validation (applied or still waiting)
    applied: int  # updates folded into a version
    rejected: int
    rejected_by_code: Mapping[str, int] = field(default_factory=dict)
    last_rejection: str | None = None


@dataclass(frozen=True)
class StrategyState:
    """A strategy's persistent state: server-optimizer moments or a partial accumulator."""

    name: str
    arrays: Mapping[str, NDArray[np.float32]]
    meta: Mapping[str, Plain] = field(default_factory=dict)  # step counts, weights, ...
    updated_at: float = 0.0
