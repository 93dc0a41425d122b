"""The aggregator's memory: model versions, rounds, nodes and every update id, in one SQLite file.

``Registry(path)`` opens (or creates) the database in WAL mode with foreign keys on and
``synchronous=FULL``, so a method that returns has its change on disk, and a SIGKILL at any
moment leaves either the whole transaction or none of it. What a restart relies on:

- ``current_version(model)`` is the version to republish (the newest of the model's chain);
- ``open_round_for(model)`` is the round in progress, and ``round_updates(round_id)`` /
  ``pending_updates(model)`` the accepted, not yet applied updates to fold again, arrays
  included;
- ``record_update`` is the idempotency guard: an update id is recorded once, so a redelivered
  update returns False and is not folded again;
- ``commit_aggregation`` writes the new version, marks the updates it folded as applied, saves
  the strategy's state and closes the round in ONE transaction: a crash leaves all or nothing.

Weights, ONNX graphs and optimizer states are stored once per content (SHA-256 addressed).
See docs/registry.md for the schema and the guarantees.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from cloud_aggregator import registry_ledger as ledger
from cloud_aggregator import registry_store as store
from cloud_aggregator.registry_codec import plain_map, to_json
from cloud_aggregator.registry_records import (
    Contribution,
    NodeRecord,
    Origin,
    RoundRecord,
    StrategyState,
    UpdateRecord,
    UpdateStatus,
    VersionInfo,
    VersionRecord,
)
from cloud_aggregator.registry_schema import (
    SCHEMA_VERSION,
    RegistryError,
    SchemaVersionError,
    connect,
)
from fedge.wire import GlobalModel, ModelUpdate, Plain

__all__ = [
    "SCHEMA_VERSION",
    "Contribution",
    "NodeRecord",
    "Registry",
    "RegistryError",
    "RoundRecord",
    "SchemaVersionError",
    "StrategyState",
    "UpdateRecord",
    "VersionInfo",
    "VersionRecord",
]


class Registry:
    """Durable state of one aggregator. Thread-safe; one process should write at a time."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db = connect(path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self, what: str, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. Any exception rolls all of it back; SQLite's own failures
        (disk full, I/O, constraint) become ``RegistryError``. ``durable=False`` trades
        power-loss durability for speed (still safe against a process crash)."""
        with self._lock:
            db = self._db
            try:
                if not durable:
                    db.execute("PRAGMA synchronous = NORMAL")
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise RegistryError(
                        f"registry {self.path}: {what} failed ({exc}): nothing was written"
                    ) from exc
                raise
            finally:
                if not durable:
                    db.execute("PRAGMA synchronous = FULL")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One consistent snapshot for reads that take several statements."""
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")

    # --- versions ------------------------------------------------------------------------------

    def put_version(
        self, model: GlobalModel, *, origin: Origin = "bootstrap", round_id: int | None = None
    ) -> VersionInfo:
        """Store a model version. Idempotent: putting the same content again returns the stored
        version; other content under an existing number is refused (versions are immutable).
        A new version's ``parent_version`` must be the current version (None for the first)."""
        what = f"storing version {model.version} of {model.model}"
        with self._write(what) as db:
            info, _created = store.insert_version(db, model, origin, round_id, self._clock())
        return info

    def current_version(self, model: str) -> VersionRecord | None:
        """The newest version of ``model`` with its weights: what to (re)publish."""
        with self._read() as db:
            head = store.head_version(db, model)
            return None if head is None else store.load_version(db, model, head)

    def get_version(self, model: str, version: int) -> VersionRecord | None:
        """One stored version of ``model`` with its weights, or None."""
        with self._read() as db:
            return store.load_version(db, model, version)

    def versions(self, model: str) -> list[VersionInfo]:
        """Metadata of every version of ``model``, oldest first (weights not loaded)."""
        with self._read() as db:
            return store.version_infos(db, model)

    def models(self) -> list[str]:
        """Every model that has at least one version."""
        with self._read() as db:
            rows = db.execute("SELECT DISTINCT model FROM versions ORDER BY model").fetchall()
        return [str(model) for (model,) in rows]

    # --- rounds --------------------------------------------------------------------------------

    def open_round(
        self,
        model: str,
        base_version: int,
        *,
        selected: Sequence[str],
        deadline: float | None,
        config: Mapping[str, Plain] | None = None,
    ) -> RoundRecord:
        """Start a round on ``base_version``; refused while another round of ``model`` is in
        progress (the database allows one) or if the base version does not exist."""
        with self._write(f"opening a round of {model}") as db:
            if not store.version_infos(db, model, base_version):
                raise RegistryError(f"cannot open a round of {model}: no version {base_version}")
            running = store.find_rounds(db, model=model, in_progress=True)
            if running:
                raise RegistryError(
                    f"model {model} already has round {running[0].round_id} in progress: "
                    "close or abort it first"
                )
            cursor = db.execute(
                "INSERT INTO rounds (model, base_version, state, config, selected, started_at, "
                "deadline) VALUES (?, ?, 'open', ?, ?, ?, ?)",
                (
                    model,
                    base_version,
                    to_json(dict(config or {})),
                    to_json(list(selected)),
                    self._clock(),
                    deadline,
                ),
            )
            return store.require_round(db, int(cursor.lastrowid or 0))

    def get_round(self, round_id: int) -> RoundRecord | None:
        with self._read() as db:
            found = store.find_rounds(db, round_id=round_id)
        return found[0] if found else None

    def open_round_for(self, model: str) -> RoundRecord | None:
        """The round of ``model`` in progress (open or aggregating): what a restart resumes."""
        with self._read() as db:
            found = store.find_rounds(db, model=model, in_progress=True)
        return found[0] if found else None

    def rounds(self, model: str, limit: int = 100) -> list[RoundRecord]:
        """The latest rounds of ``model``, newest first."""
        with self._read() as db:
            return store.find_rounds(db, model=model, limit=limit)

    def extend_round(
        self, round_id: int, *, deadline: float, selected: Sequence[str]
    ) -> RoundRecord:
        """Give an open round a later deadline and (for recruited nodes) a longer selection;
        the selection only grows, so whom a round asked is never forgotten."""
        with self._write(f"extending round {round_id}") as db:
            current = store.require_round(db, round_id)
            if current.state != "open":
                raise RegistryError(f"round {round_id} is {current.state}: it cannot be extended")
            missing = sorted(set(current.selected) - set(selected))
            if missing:
                raise RegistryError(f"extending round {round_id} would drop {missing}")
            db.execute(
                "UPDATE rounds SET deadline = ?, selected = ? WHERE round_id = ?",
                (deadline, to_json(list(selected)), round_id),
            )
            return store.require_round(db, round_id)

    def start_aggregation(self, round_id: int) -> RoundRecord:
        """Mark an open round as aggregating: it takes no more updates (repeating is harmless)."""
        with self._write(f"marking round {round_id} aggregating") as db:
            current = store.require_round(db, round_id)
            if current.state == "aggregating":
                return current
            return store.finish_round(db, round_id, "aggregating", self._clock())

    def close_round(self, round_id: int, result_version: int) -> RoundRecord:
        """Close a round on the version it produced (``commit_aggregation`` does this too)."""
        with self._write(f"closing round {round_id}") as db:
            return store.finish_round(
                db, round_id, "closed", self._clock(), result_version=result_version
            )

    def abort_round(self, round_id: int, reason: str) -> RoundRecord:
        """End a round without a version. Its accepted updates stay accepted (see
        ``round_updates``): fold them elsewhere or ``discard_updates`` them."""
        with self._write(f"aborting round {round_id}") as db:
            return store.finish_round(db, round_id, "aborted", self._clock(), reason=reason)

    # --- updates -------------------------------------------------------------------------------

    def record_update(
        self,
        update: ModelUpdate,
        *,
        status: UpdateStatus,
        reason: str | None = None,
        reason_code: str | None = None,
        norm: float | None = None,
    ) -> bool:
        """Record an update id as 'accepted' (its arrays kept until applied) or 'rejected'
        (with ``reason``); return False, writing nothing, if the id was recorded before.

        An accepted update with a ``round_id`` must answer that model's open round; to fold a
        late one asynchronously record ``dataclasses.replace(update, round_id=None)``.
        """
        with self._write(f"recording update {update.update_id}") as db:
            return ledger.insert_update(
                db,
                update,
                status=status,
                reason=reason,
                reason_code=reason_code,
                norm=norm,
                now=self._clock(),
            )

    def get_update(self, update_id: str) -> UpdateRecord | None:
        with self._read() as db:
            row = db.execute(ledger.SELECT_UPDATE, (update_id,)).fetchone()
        return None if row is None else ledger.update_record(row)

    def round_updates(self, round_id: int) -> list[ModelUpdate]:
        """The round's accepted, not yet applied updates with their arrays, in arrival order."""
        with self._read() as db:
            return ledger.accepted_updates(db, round_id=round_id)

    def pending_updates(self, model: str) -> list[ModelUpdate]:
        """Accepted, not yet applied asynchronous updates of ``model`` (no round), in order."""
        with self._read() as db:
            return ledger.accepted_updates(db, model=model)

    def mark_applied(self, update_ids: Iterable[str], version: int) -> int:
        """Mark accepted updates as applied to ``version`` of their model. Prefer
        ``commit_aggregation``, which does this in the same transaction as the version."""
        with self._write("marking updates applied") as db:
            return ledger.settle_updates(db, update_ids, model=None, applied_version=version)

    def discard_updates(self, update_ids: Iterable[str], reason: str) -> int:
        """Reject accepted updates that will never be applied (an aborted round's, say); their
        arrays are released and the reason is counted under 'discarded'."""
        with self._write("discarding updates") as db:
            return ledger.settle_updates(
                db, update_ids, model=None, applied_version=None, reason=reason
            )

    def commit_aggregation(
        self,
        result: GlobalModel,
        update_ids: Iterable[str],
        *,
        round_id: int | None = None,
        strategy_state: StrategyState | None = None,
    ) -> VersionInfo:
        """Store ``result``, mark the updates folded into it applied, save the strategy's state
        and close ``round_id`` (or, without one, record an 'async' version), atomically.

        Refused as a whole if any id is not an accepted update of the model (one applied before
        included) or the round is not in progress: nothing is written then.
        """
        origin: Origin = "async" if round_id is None else "round"
        with self._write(f"committing version {result.version} of {result.model}") as db:
            now = self._clock()
            if round_id is not None:
                target = store.require_round(db, round_id)
                if target.model != result.model or not target.in_progress:
                    raise RegistryError(
                        f"round {round_id} ({target.model}, {target.state}) cannot take a "
                        f"version of {result.model}"
                    )
            info, created = store.insert_version(db, result, origin, round_id, now)
            if not created:
                raise RegistryError(
                    f"version {result.version} of {result.model} is already stored: an "
                    "aggregation always produces a new version"
                )
            ledger.settle_updates(
                db, update_ids, model=result.model, applied_version=result.version
            )
            if strategy_state is not None:
                store.save_state(db, result.model, strategy_state, now)
            if round_id is not None:
                store.finish_round(db, round_id, "closed", now, result_version=result.version)
        return info

    def ledger(self, model: str) -> list[UpdateRecord]:
        """Every update id of ``model`` ever recorded, with its fate, in arrival order."""
        with self._read() as db:
            rows = db.execute(ledger.SELECT_MODEL_UPDATES, (model,)).fetchall()
        return [ledger.update_record(row) for row in rows]

    def rejections(self, limit: int = 100) -> list[UpdateRecord]:
        """The latest rejected updates with their reasons, newest first."""
        with self._read() as db:
            rows = db.execute(ledger.SELECT_REJECTIONS, (limit,)).fetchall()
        return [ledger.update_record(row) for row in rows]

    # --- nodes ---------------------------------------------------------------------------------

    def node_seen(
        self, node: str, *, online: bool, status: Mapping[str, Plain] | None = None
    ) -> None:
        """Record a node's presence (from its retained status or Last Will) and status map."""
        now = self._clock()
        status_json = None if status is None else to_json(dict(status))
        # Presence is re-announced by the retained status topic after a restart: a change lost
        # to a power cut (not to a crash) costs nothing, so this write skips the fsync.
        with self._write(f"recording node {node}", durable=False) as db:
            db.execute(
                "INSERT INTO nodes (node, first_seen, last_seen, online, status) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (node) DO UPDATE SET "
                "last_seen = MAX(last_seen, excluded.last_seen), online = excluded.online, "
                "status = COALESCE(excluded.status, status)",
                (node, now, now, int(online), status_json),
            )

    def nodes(self, *, online_only: bool = False) -> list[NodeRecord]:
        with self._read() as db:
            rows = db.execute(
                "SELECT node, first_seen, last_seen, online, status FROM nodes "
                "WHERE online = 1 OR NOT ? ORDER BY node",
                (online_only,),
            ).fetchall()
        return [
            NodeRecord(str(n), float(f), float(s), bool(o), None if st is None else plain_map(st))
            for n, f, s, o, st in rows
        ]

    def contributions(self) -> list[Contribution]:
        """Per node: samples and rounds that reached a version, accepted, applied and rejected
        updates, rejections by reason class and the latest reason."""
        with self._read() as db:
            totals = db.execute(
                "SELECT n.node, "
                "COALESCE(SUM(CASE WHEN u.status = 'applied' THEN u.num_samples END), 0), "
                "COUNT(DISTINCT CASE WHEN u.status = 'applied' THEN u.round_id END), "
                "COUNT(CASE WHEN u.status IN ('accepted', 'applied') THEN 1 END), "
                "COUNT(CASE WHEN u.status = 'applied' THEN 1 END), "
                "COUNT(CASE WHEN u.status = 'rejected' THEN 1 END) "
                "FROM nodes n LEFT JOIN updates u ON u.node = n.node "
                "GROUP BY n.node ORDER BY n.node"
            ).fetchall()
            by_code = db.execute(
                "SELECT node, COALESCE(reason_code, 'other'), COUNT(*) FROM updates "
                "WHERE status = 'rejected' GROUP BY 1, 2"
            ).fetchall()
            latest = db.execute(
                "SELECT node, reason FROM updates WHERE rowid IN (SELECT MAX(rowid) FROM "
                "updates WHERE status = 'rejected' GROUP BY node)"
            ).fetchall()
        codes: dict[str, dict[str, int]] = {}
        for node, code, count in by_code:
            codes.setdefault(node, {})[code] = int(count)
        last = {str(node): str(reason) for node, reason in latest}
        return [
            Contribution(
                str(node),
                int(s),
                int(r),
                int(a),
                int(ap),
                int(rj),
                codes.get(node, {}),
                last.get(node),
            )
            for node, s, r, a, ap, rj in totals
        ]

    # --- strategy state ------------------------------------------------------------------------

    def save_strategy_state(self, model: str, state: StrategyState) -> None:
        """Store a strategy's state (e.g. FedAdam moments) on its own; ``commit_aggregation``
        stores it atomically with the version it belongs to."""
        with self._write(f"saving strategy state {state.name} of {model}") as db:
            store.save_state(db, model, state, self._clock())

    def load_strategy_state(self, model: str, name: str) -> StrategyState | None:
        with self._read() as db:
            return store.load_state(db, model, name)
