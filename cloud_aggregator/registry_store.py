"""The registry's SQL for blobs, versions, rounds and strategy state, one job per function.

Each function runs inside a transaction its caller owns: ``Registry`` (registry.py) holds the
connection, the lock and the transactions. The functions read and write rows and raise
``RegistryError`` naming what was refused and why, which rolls the whole transaction back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.registry_codec import (
    decode_arrays,
    encode_arrays,
    float_map,
    name_list,
    plain_map,
    sha256,
    to_json,
)
from cloud_aggregator.registry_records import (
    Origin,
    RoundRecord,
    RoundState,
    StrategyState,
    VersionInfo,
    VersionRecord,
)
from cloud_aggregator.registry_schema import RegistryError
from fedge.wire import GlobalModel

# Whole statements, never assembled from strings at run time.
_SELECT_VERSIONS = (
    "SELECT model, version, parent_version, origin, round_id, arrays_sha256, onnx_sha256, "
    "metrics, created_at, committed_at FROM versions "
    "WHERE model = :model AND (:version IS NULL OR version = :version) ORDER BY version"
)
_SELECT_ROUNDS = (
    "SELECT round_id, model, base_version, state, config, selected, started_at, deadline, "
    "closed_at, result_version, reason FROM rounds "
    "WHERE (:round_id IS NULL OR round_id = :round_id) AND (:model IS NULL OR model = :model) "
    "AND (NOT :in_progress OR state IN ('open', 'aggregating')) "
    "ORDER BY round_id DESC LIMIT :limit"
)
_UNREFERENCED = """
    DELETE FROM blobs WHERE sha256 = :sha
    AND NOT EXISTS (SELECT 1 FROM versions WHERE arrays_sha256 = :sha OR onnx_sha256 = :sha)
    AND NOT EXISTS (SELECT 1 FROM updates WHERE arrays_sha256 = :sha)
    AND NOT EXISTS (SELECT 1 FROM strategy_state WHERE arrays_sha256 = :sha)"""


# --- blobs -------------------------------------------------------------------------------------


def put_blob(db: sqlite3.Connection, data: bytes) -> str:
    """Store ``data`` once under its SHA-256 and return the address."""
    address = sha256(data)
    db.execute(
        "INSERT INTO blobs (sha256, size, data) VALUES (?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
        (address, len(data), data),
    )
    return address


def get_blob(db: sqlite3.Connection, address: str) -> bytes:
    """The bytes stored under ``address``, checked against it (bit rot is an error)."""
    row = db.execute("SELECT data FROM blobs WHERE sha256 = ?", (address,)).fetchone()
    if row is None:
        raise RegistryError(f"blob {address} is missing from the registry")
    data = bytes(row[0])
    if sha256(data) != address:
        raise RegistryError(f"blob {address} is corrupt: its content no longer matches its hash")
    return data


def release_blobs(db: sqlite3.Connection, addresses: Iterable[str | None]) -> None:
    """Delete the given blobs that nothing refers to any more."""
    for address in {a for a in addresses if a is not None}:
        db.execute(_UNREFERENCED, {"sha": address})


def _float32(
    arrays: Mapping[str, NDArray[np.generic]], what: str
) -> dict[str, NDArray[np.float32]]:
    for name, array in arrays.items():
        if array.dtype != np.dtype("<f4"):
            raise RegistryError(f"{what}: array {name} is {array.dtype}, expected float32")
    return cast(dict[str, NDArray[np.float32]], dict(arrays))


# --- versions ----------------------------------------------------------------------------------


def _version_info(row: Sequence[object]) -> VersionInfo:
    model, version, parent, origin, round_id, arrays, onnx, metrics, created, committed = row
    return VersionInfo(
        model=str(model),
        version=int(cast(int, version)),
        parent_version=None if parent is None else int(cast(int, parent)),
        origin=cast(Origin, origin),
        round_id=None if round_id is None else int(cast(int, round_id)),
        arrays_sha256=str(arrays),
        onnx_sha256=str(onnx),
        metrics=float_map(cast(str, metrics)),
        created_at=float(cast(float, created)),
        committed_at=float(cast(float, committed)),
    )


def version_infos(
    db: sqlite3.Connection, model: str, version: int | None = None
) -> list[VersionInfo]:
    """Metadata of every version of ``model`` (or the one ``version``), oldest first."""
    rows = db.execute(_SELECT_VERSIONS, {"model": model, "version": version})
    return [_version_info(row) for row in rows]


def head_version(db: sqlite3.Connection, model: str) -> int | None:
    """The newest version number of ``model``, or None if it has none."""
    (head,) = db.execute("SELECT MAX(version) FROM versions WHERE model = ?", (model,)).fetchone()
    return None if head is None else int(head)


def load_version(db: sqlite3.Connection, model: str, version: int) -> VersionRecord | None:
    """A version with its weights and ONNX graph, rebuilt as the ``GlobalModel`` to publish."""
    infos = version_infos(db, model, version)
    if not infos:
        return None
    info = infos[0]
    spec, names = db.execute(
        "SELECT spec, array_names FROM versions WHERE model = ? AND version = ?", (model, version)
    ).fetchone()
    what = f"model {model} version {version}"
    stored = _float32(decode_arrays(get_blob(db, info.arrays_sha256), what), what)
    global_model = GlobalModel(
        model=model,
        version=version,
        arrays={name: stored[name] for name in name_list(names)},
        onnx=get_blob(db, info.onnx_sha256),
        architecture=plain_map(spec),
        parent_version=info.parent_version,
        metrics=dict(info.metrics),
        created_at=info.created_at,
    )
    return VersionRecord(info, global_model)


def insert_version(
    db: sqlite3.Connection,
    result: GlobalModel,
    origin: Origin,
    round_id: int | None,
    now: float,
) -> tuple[VersionInfo, bool]:
    """Store ``result`` as a new version; an identical existing one is returned instead.

    Returns the version's metadata and whether it was created. Versions are immutable and form
    a chain per model: a new version's parent must be the current (newest) one.
    """
    model, version = result.model, result.version
    if (origin == "round") != (round_id is not None):
        raise RegistryError(f"a version of origin {origin!r} cannot name round {round_id}")
    arrays_blob = encode_arrays(result.arrays)
    arrays_sha, onnx_sha = sha256(arrays_blob), sha256(result.onnx)
    existing = version_infos(db, model, version)
    if existing:
        old = existing[0]
        if (old.arrays_sha256, old.onnx_sha256, old.parent_version) == (
            arrays_sha,
            onnx_sha,
            result.parent_version,
        ):
            return old, False
        raise RegistryError(
            f"model {model} version {version} already exists with other content: versions are "
            "immutable, store the new weights as a new version"
        )
    head = head_version(db, model)
    if result.parent_version != head:
        current = "none" if head is None else str(head)
        raise RegistryError(
            f"model {model} version {version} names parent {result.parent_version}, but the "
            f"current version is {current}: a new version must extend the current one"
        )
    put_blob(db, arrays_blob)
    put_blob(db, result.onnx)
    db.execute(
        "INSERT INTO versions (model, version, parent_version, spec, array_names, arrays_sha256, "
        "onnx_sha256, metrics, created_at, committed_at, origin, round_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            model,
            version,
            result.parent_version,
            to_json(dict(result.architecture)),
            to_json(list(result.arrays)),
            arrays_sha,
            onnx_sha,
            to_json(dict(result.metrics)),
            result.created_at,
            now,
            origin,
            round_id,
        ),
    )
    return version_infos(db, model, version)[0], True


# --- rounds ------------------------------------------------------------------------------------


def _round(row: Sequence[object]) -> RoundRecord:
    rid, model, base, state, config, selected, started, deadline, closed, result, reason = row
    return RoundRecord(
        round_id=int(cast(int, rid)),
        model=str(model),
        base_version=int(cast(int, base)),
        state=cast(RoundState, state),
        config=plain_map(cast(str, config)),
        selected=tuple(name_list(cast(str, selected))),
        started_at=float(cast(float, started)),
        deadline=None if deadline is None else float(cast(float, deadline)),
        closed_at=None if closed is None else float(cast(float, closed)),
        result_version=None if result is None else int(cast(int, result)),
        reason=None if reason is None else str(reason),
    )


def find_rounds(
    db: sqlite3.Connection,
    *,
    round_id: int | None = None,
    model: str | None = None,
    in_progress: bool = False,
    limit: int = -1,
) -> list[RoundRecord]:
    """Rounds matching every given condition, newest first."""
    args = {"round_id": round_id, "model": model, "in_progress": in_progress, "limit": limit}
    return [_round(row) for row in db.execute(_SELECT_ROUNDS, args)]


def require_round(db: sqlite3.Connection, round_id: int) -> RoundRecord:
    rounds = find_rounds(db, round_id=round_id)
    if not rounds:
        raise RegistryError(f"round {round_id} is unknown to the registry")
    return rounds[0]


def finish_round(
    db: sqlite3.Connection,
    round_id: int,
    state: RoundState,
    now: float,
    *,
    result_version: int | None = None,
    reason: str | None = None,
) -> RoundRecord:
    """Move an in-progress round to ``state``; repeating the same finish changes nothing."""
    current = require_round(db, round_id)
    if not current.in_progress:
        if (current.state, current.result_version, current.reason) == (
            state,
            result_version,
            reason,
        ):
            return current
        raise RegistryError(f"round {round_id} of {current.model} is already {current.state}")
    if state == "closed" and (
        result_version is None or not version_infos(db, current.model, result_version)
    ):
        raise RegistryError(
            f"round {round_id} cannot close on version {result_version} of "
            f"{current.model}: no such version"
        )
    closed_at = now if state in ("closed", "aborted") else None
    db.execute(
        "UPDATE rounds SET state = ?, closed_at = ?, result_version = ?, reason = ? "
        "WHERE round_id = ?",
        (state, closed_at, result_version, reason, round_id),
    )
    return require_round(db, round_id)


# --- strategy state ----------------------------------------------------------------------------


def save_state(db: sqlite3.Connection, model: str, state: StrategyState, now: float) -> None:
    """Store (or replace) a strategy's state for ``model``."""
    old = db.execute(
        "SELECT arrays_sha256 FROM strategy_state WHERE model = ? AND name = ?",
        (model, state.name),
    ).fetchone()
    address = put_blob(db, encode_arrays(state.arrays))
    db.execute(
        "INSERT INTO strategy_state (model, name, arrays_sha256, meta, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (model, name) DO UPDATE SET "
        "arrays_sha256 = excluded.arrays_sha256, meta = excluded.meta, "
        "updated_at = excluded.updated_at",
        (model, state.name, address, to_json(dict(state.meta)), now),
    )
    if old is not None:
        release_blobs(db, [old[0]])


def load_state(db: sqlite3.Connection, model: str, name: str) -> StrategyState | None:
    row = db.execute(
        "SELECT arrays_sha256, meta, updated_at FROM strategy_state WHERE model = ? AND name = ?",
        (model, name),
    ).fetchone()
    if row is None:
        return None
    what = f"strategy state {name} of {model}"
    arrays = _float32(decode_arrays(get_blob(db, row[0]), what), what)
    return StrategyState(name, arrays, plain_map(row[1]), float(row[2]))
