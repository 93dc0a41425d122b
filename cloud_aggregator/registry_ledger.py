"""The update ledger's SQL: every update id once, accepted arrays kept until applied.

Like registry_store, each function runs inside a transaction its caller (``Registry``) owns
and raises ``RegistryError`` to roll all of it back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import cast

from cloud_aggregator.registry_codec import (
    decode_arrays,
    encode_arrays,
    float_map,
    plain_map,
    to_json,
)
from cloud_aggregator.registry_records import UpdateRecord, UpdateStatus
from cloud_aggregator.registry_schema import RegistryError
from cloud_aggregator.registry_store import (
    get_blob,
    put_blob,
    release_blobs,
    require_round,
    version_infos,
)
from fedge.wire import ModelUpdate

SELECT_UPDATE = (
    "SELECT update_id, node, model, base_version, round_id, received_at, status, reason, "
    "reason_code, num_samples, norm, applied_version FROM updates WHERE update_id = ?"
)
SELECT_REJECTIONS = (
    "SELECT update_id, node, model, base_version, round_id, received_at, status, reason, "
    "reason_code, num_samples, norm, applied_version FROM updates WHERE status = 'rejected' "
    "ORDER BY received_at DESC, rowid DESC LIMIT ?"
)
SELECT_MODEL_UPDATES = (
    "SELECT update_id, node, model, base_version, round_id, received_at, status, reason, "
    "reason_code, num_samples, norm, applied_version FROM updates WHERE model = ? "
    "ORDER BY rowid"
)
_SELECT_ACCEPTED = (
    "SELECT update_id, node, model, base_version, num_samples, metrics, round_id, compression, "
    "created_at, arrays_sha256 FROM updates WHERE status = 'accepted' "
    "AND (:round_id IS NULL OR round_id = :round_id) "
    "AND (:model IS NULL OR (model = :model AND round_id IS NULL)) "
    "ORDER BY received_at, rowid"
)


def update_record(row: Sequence[object]) -> UpdateRecord:
    uid, node, model, base, rid, received, status, reason, code, samples, norm, applied = row
    return UpdateRecord(
        update_id=str(uid),
        node=str(node),
        model=str(model),
        base_version=int(cast(int, base)),
        round_id=None if rid is None else int(cast(int, rid)),
        received_at=float(cast(float, received)),
        status=cast(UpdateStatus, status),
        reason=None if reason is None else str(reason),
        reason_code=None if code is None else str(code),
        num_samples=int(cast(int, samples)),
        norm=None if norm is None else float(cast(float, norm)),
        applied_version=None if applied is None else int(cast(int, applied)),
    )


def insert_update(
    db: sqlite3.Connection,
    update: ModelUpdate,
    *,
    status: UpdateStatus,
    reason: str | None,
    reason_code: str | None,
    norm: float | None,
    now: float,
) -> bool:
    """Add an update id to the ledger; False (and nothing written) if it is already there."""
    seen = db.execute("SELECT 1 FROM updates WHERE update_id = ?", (update.update_id,)).fetchone()
    if seen is not None:
        return False
    if status == "applied" or (status == "rejected") != (reason is not None):
        raise RegistryError(
            f"update {update.update_id}: record it as 'accepted' without a reason or as "
            f"'rejected' with one (got {status!r}, reason {reason!r})"
        )
    if status == "accepted" and update.round_id is not None:
        target = require_round(db, update.round_id)
        if target.model != update.model or target.state != "open":
            raise RegistryError(
                f"update {update.update_id} answers round {update.round_id} ({target.model}, "
                f"{target.state}): a round takes updates only while open; record it with "
                "round_id None to fold it asynchronously, or reject it"
            )
    db.execute(
        "INSERT INTO nodes (node, first_seen, last_seen) VALUES (?, ?, ?) "
        "ON CONFLICT (node) DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen)",
        (update.node, now, now),
    )
    arrays_sha = put_blob(db, encode_arrays(update.arrays)) if status == "accepted" else None
    compression = None if update.compression is None else to_json(dict(update.compression))
    db.execute(
        "INSERT INTO updates (update_id, node, model, base_version, round_id, received_at, "
        "status, reason, reason_code, num_samples, norm, metrics, compression, created_at, "
        "arrays_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            update.update_id,
            update.node,
            update.model,
            update.base_version,
            update.round_id,
            now,
            status,
            reason,
            reason_code,
            update.num_samples,
            norm,
            to_json(dict(update.metrics)),
            compression,
            update.created_at,
            arrays_sha,
        ),
    )
    return True


def accepted_updates(
    db: sqlite3.Connection, *, round_id: int | None = None, model: str | None = None
) -> list[ModelUpdate]:
    """Accepted, not yet applied updates, rebuilt for folding, in arrival order: a round's
    (``round_id``) or a model's asynchronous ones (``model``)."""
    rows = db.execute(_SELECT_ACCEPTED, {"round_id": round_id, "model": model}).fetchall()
    out = []
    for uid, node, update_model, base, samples, metrics, rid, compression, created, sha in rows:
        arrays = decode_arrays(get_blob(db, sha), f"update {uid}")
        out.append(
            ModelUpdate(
                node=node,
                model=update_model,
                base_version=base,
                update_id=uid,
                num_samples=samples,
                arrays=arrays,
                metrics=float_map(metrics),
                round_id=rid,
                compression=None if compression is None else plain_map(compression),
                created_at=created,
            )
        )
    return out


def settle_updates(
    db: sqlite3.Connection,
    update_ids: Iterable[str],
    *,
    model: str | None,
    applied_version: int | None,
    reason: str | None = None,
) -> int:
    """Mark accepted updates applied to ``applied_version`` (or rejected with ``reason``).

    Every id must be an accepted update (of ``model`` when given): an id applied before raises,
    which rolls back the caller's transaction, so no update is ever counted twice.
    """
    released: list[str | None] = []
    known_versions: set[str] = set()  # models whose ``applied_version`` was found
    ids = list(dict.fromkeys(update_ids))
    for update_id in ids:
        row = db.execute(
            "SELECT model, status, applied_version, arrays_sha256 FROM updates WHERE update_id = ?",
            (update_id,),
        ).fetchone()
        if row is None:
            raise RegistryError(f"update {update_id} was never recorded")
        update_model, status, previous, arrays_sha = row
        if status == "applied":
            raise RegistryError(
                f"update {update_id} was already applied to version {previous} of "
                f"{update_model}: applying it again would count it twice"
            )
        if status != "accepted" or (model is not None and update_model != model):
            raise RegistryError(
                f"update {update_id} is {status} for {update_model}, not an accepted update"
                + ("" if model is None else f" of {model}")
            )
        if applied_version is not None and update_model not in known_versions:
            if not version_infos(db, update_model, applied_version):
                raise RegistryError(f"model {update_model} has no version {applied_version}")
            known_versions.add(update_model)
        db.execute(
            "UPDATE updates SET status = ?, applied_version = ?, reason = ?, reason_code = ?, "
            "arrays_sha256 = NULL WHERE update_id = ?",
            (
                "applied" if applied_version is not None else "rejected",
                applied_version,
                reason,
                None if applied_version is not None else "discarded",
                update_id,
            ),
        )
        released.append(arrays_sha)
    release_blobs(db, released)
    return len(ids)
